# ---- deploy/aws/user-data.sh: the steps. Above this line the CDK app put the stack's values
# (KE_* variables) and the files of deploy/systemd (KE_UNIT, KE_SYSUSERS); see
# deploy/aws/kafka_edge_cdk/user_data.py. cloud-init runs it once, as root, at first boot, on
# Amazon Linux 2023 or Debian 12. Its output: /var/log/cloud-init-output.log.
set -euo pipefail
umask 022

VENV=/opt/kafka-edge
ETC=/etc/kafka-edge
CONFIG=$ETC/kafka-edge.yaml
READY_TIMEOUT_S=180

log() { printf 'kafka-edge user data: %s\n' "$*"; }
fail() { log "FAILED: $*"; exit 1; }

# The one call to AWS: the SecretString of a Secrets Manager secret, with the instance role's
# credentials (secretsmanager:GetSecretValue on CertificateSecretArns only).
fetch_secret() {
  aws secretsmanager get-secret-value --region "$KE_REGION" --secret-id "$1" \
    --query SecretString --output text
}

installed() {
  case "$OS_ID" in
    amzn) rpm -q "$1" >/dev/null 2>&1 ;;
    *) [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ] ;;
  esac
}

# 1. Python 3.11 with venv and the AWS CLI, from the distribution (installed only if missing)
install_os_packages() {
  OS_ID=$(. /etc/os-release && echo "$ID")
  local pkgs missing=() cli
  case "$OS_ID" in
    amzn) PYTHON=python3.11; pkgs=(python3.11 python3.11-pip); cli=awscli-2 ;;
    debian) PYTHON=python3; pkgs=(python3 python3-venv ca-certificates); cli=awscli ;;
    *) fail "unsupported distribution $OS_ID (Amazon Linux 2023 and Debian 12 are)" ;;
  esac
  for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
  command -v aws >/dev/null 2>&1 || missing+=("$cli")
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    case "$OS_ID" in
      amzn) dnf install -y -q "${missing[@]}" ;;
      *) apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
           --no-install-recommends "${missing[@]}" ;;
    esac
  fi
}

# 2. kafka-edge into a virtualenv at /opt/kafka-edge (the path the unit runs)
install_kafka_edge() {
  log "installing $KE_PACKAGE into $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check "$KE_PACKAGE"
  "$VENV/bin/kafka-edge" --version
}

# 3. the system user the unit runs as (deploy/systemd/kafka-edge.sysusers)
create_user() {
  printf '%s\n' "$KE_SYSUSERS" > /usr/lib/sysusers.d/kafka-edge.conf
  systemd-sysusers /usr/lib/sysusers.d/kafka-edge.conf
  install -d -m 0750 -o root -g kafka-edge "$ETC" "$ETC/certs"
}

# 4. certificates and keys: each secret's SecretString is a JSON object of file names to PEM
#    text ({"orders.pem": "-----BEGIN CERTIFICATE-----...", "orders.key": "..."}), written to
#    /etc/kafka-edge/certs/<name>, mode 0640, owner root, group kafka-edge. Names only are logged.
write_certificates() {
  local IFS=, arn
  for arn in $KE_CERTIFICATE_SECRETS; do
    log "certificates from $arn"
    fetch_secret "$arn" | "$VENV/bin/python" -c "$WRITE_SECRET_FILES" "$ETC/certs" "$arn"
  done
}

WRITE_SECRET_FILES='
import grp, json, os, re, sys
folder, source = sys.argv[1], sys.argv[2]
try:
    files = json.load(sys.stdin)
except ValueError:
    files = None
if not isinstance(files, dict) or not files or not all(
        isinstance(k, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", k)
        and isinstance(v, str) for k, v in files.items()):
    sys.exit(f"{source}: the secret must be a JSON object of file names to PEM text")
gid = grp.getgrnam("kafka-edge").gr_gid
for name, text in files.items():
    path = os.path.join(folder, name)
    tmp = f"{path}.new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as out:
        out.write(text if text.endswith("\n") else text + "\n")
    os.chown(tmp, 0, gid)
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)
    print(f"  {path}")
'

# 5. the configuration (the EdgeConfiguration parameter, or the CDK app's file), checked; the
#    admin port must be the one the load balancer's health check asks
write_configuration() {
  printf '%s' "$KE_CONFIG_B64" | base64 -d > "$CONFIG.new"
  chown root:kafka-edge "$CONFIG.new"
  chmod 0640 "$CONFIG.new"
  mv "$CONFIG.new" "$CONFIG"
  "$VENV/bin/kafka-edge" check --config "$CONFIG"
  DRAIN_S=$("$VENV/bin/python" -c "$CHECK_ADMIN_PORT" "$CONFIG" "$KE_ADMIN_PORT")
}

CHECK_ADMIN_PORT='
import math, sys
from kafka_edge.config import load_config
config = load_config(sys.argv[1])
address = config.observability.http_address
if address is None or address.port != int(sys.argv[2]) or address.host not in ("0.0.0.0", "::"):
    sys.exit(f"observability.http_bind must be \"0.0.0.0:{sys.argv[2]}\" (AdminPort, where the"
             f" load balancer asks /readyz), not {config.observability.http_bind!r}")
print(math.ceil(config.limits.drain_timeout_s))
'

# 6. the unit (deploy/systemd/kafka-edge.service) with this stack's settings in a drop-in
install_unit() {
  printf '%s\n' "$KE_UNIT" > /etc/systemd/system/kafka-edge.service
  install -d /etc/systemd/system/kafka-edge.service.d
  {
    echo "# from the launch template's user data: workers, and a stop timeout 30 s longer"
    echo "# than limits.drain_timeout_s"
    echo "[Service]"
    echo "ExecStart="
    echo "ExecStart=$VENV/bin/kafka-edge run --config $CONFIG --workers $KE_WORKERS"
    echo "TimeoutStopSec=$((DRAIN_S + 30))"
  } > /etc/systemd/system/kafka-edge.service.d/aws.conf
  if [ -n "$KE_LOG_GROUP" ]; then
    ship_logs
  fi
  systemctl daemon-reload
  systemctl enable --now kafka-edge.service
}

# 6b. optional (LogRetentionDays > 0): the service's output to a file the CloudWatch agent
#     sends to the stack's log group
ship_logs() {
  {
    echo "[Service]"
    echo "LogsDirectory=kafka-edge"
    echo "StandardOutput=append:/var/log/kafka-edge/kafka-edge.log"
    echo "StandardError=inherit"
  } > /etc/systemd/system/kafka-edge.service.d/logs.conf
  printf '%s\n' "/var/log/kafka-edge/kafka-edge.log {" "  daily" "  rotate 3" "  compress" \
    "  copytruncate" "  missingok" "}" > /etc/logrotate.d/kafka-edge
  local agent=/opt/aws/amazon-cloudwatch-agent
  if [ ! -x "$agent/bin/amazon-cloudwatch-agent-ctl" ]; then
    case "$OS_ID" in
      amzn) dnf install -y -q amazon-cloudwatch-agent ;;
      *) "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlretrieve(*sys.argv[1:])' \
           "https://s3.amazonaws.com/amazoncloudwatch-agent/debian/$(dpkg --print-architecture)/latest/amazon-cloudwatch-agent.deb" \
           /tmp/amazon-cloudwatch-agent.deb
         dpkg -i /tmp/amazon-cloudwatch-agent.deb ;;
    esac
  fi
  printf '{"logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "%s", "log_group_name": "%s", "log_stream_name": "{instance_id}"}]}}}}\n' \
    /var/log/kafka-edge/kafka-edge.log "$KE_LOG_GROUP" > "$agent/etc/kafka-edge.json"
  "$agent/bin/amazon-cloudwatch-agent-ctl" -a fetch-config -m ec2 -s -c "file:$agent/etc/kafka-edge.json"
}

# 7. ready: /readyz answers 200 (what the target group's health check asks), else the journal
wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$KE_ADMIN_PORT/readyz" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      journalctl -u kafka-edge.service -n 50 --no-pager || true
      fail "/readyz did not answer 200 within $READY_TIMEOUT_S s"
    fi
    sleep 1
  done
  log "ready: /readyz answers 200 on port $KE_ADMIN_PORT"
}

install_os_packages
install_kafka_edge
create_user
write_certificates
write_configuration
install_unit
wait_ready
