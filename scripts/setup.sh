#!/usr/bin/env bash
# Idempotent set-up: checks Java and Maven, installs the Debian tools the tests use, creates .venv
# with the package and its dev extras, and fetches Apache Kafka jars from Maven Central.
# A second run only checks; nothing already done is done again.
set -euo pipefail
cd "$(dirname "$0")/.."

KAFKA_VERSIONS="${KAFKA_VERSIONS:-4.4.0 3.9.1}"
PYTHON="${PYTHON:-python3}"
missing=()

say() { printf '[setup] %s\n' "$*"; }

# 1. Java >= 17 and Maven
if ! command -v java >/dev/null 2>&1; then
  missing+=("java (JDK 17 or newer: apt-get install openjdk-17-jdk-headless)")
else
  jv=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
  if [ -z "$jv" ] || [ "$jv" -lt 17 ]; then
    missing+=("java >= 17 (found: ${jv:-unknown})")
  fi
fi
command -v mvn >/dev/null 2>&1 || missing+=("maven (apt-get install maven)")
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null \
  || missing+=("python >= 3.11 (set PYTHON=/path/to/python3.11)")
if [ ${#missing[@]} -gt 0 ]; then
  say "missing prerequisites:"; for m in "${missing[@]}"; do say "  - $m"; done
  exit 1
fi

# 2. Debian tools used by the tests: kcat (librdkafka CLI), haproxy (load-balancer stand-in), ip (netns),
#    chromium (the status page test drives it headless through Playwright)
need_pkgs=()
command -v kcat >/dev/null 2>&1 || need_pkgs+=(kcat)
command -v haproxy >/dev/null 2>&1 || need_pkgs+=(haproxy)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
[ -x /usr/sbin/iptables ] || need_pkgs+=(iptables)   # the network-cut fault (a black hole)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
command -v faketime >/dev/null 2>&1 || need_pkgs+=(faketime)   # doctor's clock check test (libfaketime)
# the emulated-MSK tests' DNS server in the client network (the region TXT record, the wildcard)
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need_pkgs+=(dnsmasq-base)
# the container image (make image, tests/deploy): podman with runc, mmdebstrap for the local base
for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || need_pkgs+=("$tool")
done
# the CDK app's synthesis (tests/deploy/test_aws_templates.py): aws-cdk-lib runs in Node.js
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    say "WARNING: missing ${need_pkgs[*]} and cannot apt-get install (not root); tests needing them will skip"
  fi
fi

# 3. Python virtualenv with the package and its dev extras
stamp=.venv/.installed
if [ ! -x .venv/bin/pip ]; then
  # also a half-made .venv (its pip never installed: an interrupted or failed first set-up)
  say "creating .venv"
  rm -rf .venv
  if ! "$PYTHON" -m venv .venv; then
    say "creating .venv failed; trying once more"
    rm -rf .venv
    "$PYTHON" -m venv .venv
  fi
  rm -f "$stamp"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing kafka-edge[dev,bench,deploy] into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev,bench,deploy]'
  touch "$stamp"
else
  say ".venv up to date"
fi

# 4. Apache Kafka broker and tools jars from Maven Central
for v in $KAFKA_VERSIONS; do
  dir=".cache/kafka/$v/libs"
  if [ -f ".cache/kafka/$v/.complete" ]; then
    say "Apache Kafka $v jars present"
    continue
  fi
  say "fetching Apache Kafka $v jars from Maven Central"
  log4j_args=()
  case "$v" in 3.*) log4j_args=(-Dlegacy.logging=true) ;; esac
  mvn -q -B -f tools/kafka-jars/pom.xml -Dkafka.version="$v" "${log4j_args[@]}" \
    -Dout="$PWD/$dir" dependency:copy-dependencies
  touch ".cache/kafka/$v/.complete"
done

# 4b. AWS's MSK IAM client library for Java (aws-msk-iam-auth) for the emulated-MSK tests
msk_iam=".cache/msk-iam/2.3.6"
if [ -f "$msk_iam/.complete" ]; then
  say "aws-msk-iam-auth 2.3.6 jars present"
else
  say "fetching aws-msk-iam-auth 2.3.6 and its dependencies from Maven Central"
  mvn -q -B -f tools/msk-iam-jars/pom.xml -Dout="$PWD/$msk_iam/libs" dependency:copy-dependencies
  touch "$msk_iam/.complete"
fi

# go_step MODULE DONE DOING NO_GO: `python -m MODULE --check`, else `python -m MODULE`, whose
# exit 2 (no Go toolchain) is a warning, not a failure
go_step() {
  if .venv/bin/python -m "$1" --check >/dev/null; then
    say "$2"
    return
  fi
  say "$3"
  local rc=0
  .venv/bin/python -m "$1" >/dev/null || rc=$?
  if [ "$rc" = 2 ]; then
    say "WARNING: $4"
  elif [ "$rc" != 0 ]; then
    exit 1
  fi
}

# 5. Go test programs (testbed/go: sarama with SaslHandshake v0), built once into .cache/go-bin
#    (modules and build cache in .cache/go; `go` from PATH or /usr/local/go/bin)
go_step testbed.gobuild "Go test programs built" \
  "building Go test programs (testbed/go) into .cache/go-bin" \
  "no Go toolchain (go on PATH or /usr/local/go/bin/go); tests needing it will skip"

# 6. helm for the chart's tests (tests/deploy), `go install`ed once into .cache/go-bin
go_step testbed.gotools "helm installed" "installing helm (go install) into .cache/go-bin" \
  "no Go toolchain; the Helm chart tests will skip"
say "done"
