{{/* Names and labels */}}
{{- define "kafka-edge.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kafka-edge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kafka-edge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kafka-edge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kafka-edge.labels" -}}
{{ include "kafka-edge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kafka-edge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kafka-edge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret an entry of .Values.certificates is mounted from */}}
{{- define "kafka-edge.certSecretName" -}}
{{- if .cert.existingSecret -}}
{{- .cert.existingSecret -}}
{{- else -}}
{{- printf "%s-%s-tls" (include "kafka-edge.fullname" .root) .cert.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Seconds Kubernetes waits for a terminating pod: preStop sleep + drain + margin */}}
{{- define "kafka-edge.gracePeriod" -}}
{{- $floor := add .Values.preStopSleepSeconds .Values.drainTimeoutSeconds -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $floor 15 -}}
{{- else if le (int .Values.terminationGracePeriodSeconds) (int $floor) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be longer than preStopSleepSeconds + drainTimeoutSeconds (%v): the drain would be killed" .Values.terminationGracePeriodSeconds $floor) -}}
{{- else -}}
{{- .Values.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/*
The kafka-edge configuration: .Values.config plus what the chart owns (the health endpoint's
address, the drain timeout, PROXY protocol on every client port).
*/}}
{{- define "kafka-edge.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if hasKey ($config.observability | default dict) "http_bind" -}}
{{- fail "config.observability.http_bind: set by the chart (from adminPort), leave it out" -}}
{{- end -}}
{{- if hasKey ($config.limits | default dict) "drain_timeout_s" -}}
{{- fail "config.limits.drain_timeout_s: set by the chart (from drainTimeoutSeconds), leave it out" -}}
{{- end -}}
{{- range $i, $l := ($config.listeners | default list) -}}
{{- if hasKey $l "proxy_protocol" -}}
{{- fail (printf "config.listeners[%d].proxy_protocol: set by the chart (from service.proxyProtocol), leave it out" $i) -}}
{{- end -}}
{{- end -}}
{{- range $i, $c := $config.clusters -}}
{{- if and $c.port_routing (hasKey ($c.port_routing | default dict) "proxy_protocol") -}}
{{- fail (printf "config.clusters[%d].port_routing.proxy_protocol: set by the chart (from service.proxyProtocol), leave it out" $i) -}}
{{- end -}}
{{- end -}}
{{- $obs := get $config "observability" | default dict -}}
{{- $_ := set $obs "http_bind" (printf "0.0.0.0:%d" (int .Values.adminPort)) -}}
{{- $_ = set $config "observability" $obs -}}
{{- $limits := get $config "limits" | default dict -}}
{{- $_ = set $limits "drain_timeout_s" .Values.drainTimeoutSeconds -}}
{{- $_ = set $config "limits" $limits -}}
{{- $pp := .Values.service.proxyProtocol -}}
{{- if $pp.enabled -}}
{{- if not $pp.trustedSources -}}
{{- fail "service.proxyProtocol.trustedSources: required when PROXY protocol is enabled (the load balancer's networks, e.g. the VPC CIDR)" -}}
{{- end -}}
{{- $block := dict "mode" $pp.mode "trusted_sources" $pp.trustedSources -}}
{{- range (get $config "listeners" | default list) -}}
{{- $_ = set . "proxy_protocol" $block -}}
{{- end -}}
{{- range $config.clusters -}}
{{- if .port_routing -}}
{{- $_ = set .port_routing "proxy_protocol" $block -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
The client ports, as YAML {ports: [{name, port}]}: each listener's bind port, and each
port_routing cluster's bootstrap port and broker ports. Clients are given these same ports.
*/}}
{{- define "kafka-edge.ports" -}}
{{- $ports := list -}}
{{- $byListener := dict -}}
{{- range $i, $l := (.Values.config.listeners | default list) -}}
{{- $port := regexReplaceAll "^.*:" $l.bind "" | int -}}
{{- $_ := set $byListener $l.name $port -}}
{{- $ports = append $ports (dict "name" (printf "sni-%d" $i) "port" $port) -}}
{{- end -}}
{{- range $i, $c := .Values.config.clusters -}}
{{- with $c.sni_routing -}}
{{- if and .advertised_port (ne (int .advertised_port) (int (get $byListener .listener))) -}}
{{- fail (printf "config.clusters[%d].sni_routing.advertised_port (%v) differs from the port listener %s binds (%v): the Service exposes the bound port" $i .advertised_port .listener (get $byListener .listener)) -}}
{{- end -}}
{{- end -}}
{{- with $c.port_routing -}}
{{- if and .advertised_port_base (ne (int .advertised_port_base) (int .broker_port_base)) -}}
{{- fail (printf "config.clusters[%d].port_routing.advertised_port_base (%v) differs from broker_port_base (%v): the Service exposes the bound ports" $i .advertised_port_base .broker_port_base) -}}
{{- end -}}
{{- $ports = append $ports (dict "name" (printf "c%d-boot" $i) "port" (int .bootstrap_port)) -}}
{{- $low := 0 -}}
{{- if hasKey . "node_id_min" -}}{{- $low = int .node_id_min -}}{{- end -}}
{{- $high := 63 -}}
{{- if hasKey . "node_id_max" -}}{{- $high = int .node_id_max -}}{{- end -}}
{{- range $n := until (int (add (sub $high $low) 1)) -}}
{{- $ports = append $ports (dict "name" (printf "c%d-b%d" $i $n) "port" (add (int $c.port_routing.broker_port_base) $n)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "ports" $ports) -}}
{{- end -}}
