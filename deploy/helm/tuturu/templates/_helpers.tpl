{{/* Names. */}}
{{- define "tuturu.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of one service's objects: <fullname>-<service>. */}}
{{- define "tuturu.name" -}}
{{- printf "%s-%s" (include "tuturu.fullname" .root) .service -}}
{{- end -}}

{{/* Labels that select one service's pods; they never change across upgrades. */}}
{{- define "tuturu.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{/* Every object's labels. */}}
{{- define "tuturu.labels" -}}
{{ include "tuturu.selectorLabels" . }}
app.kubernetes.io/part-of: tuturu
app.kubernetes.io/version: {{ .root.Values.image.tag | default .root.Chart.AppVersion | replace "+" "_" | replace ":" "_" | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "tuturu.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "tuturu.tokenSecret" -}}
{{- .Values.tokens.existingSecret | default (printf "%s-tokens" (include "tuturu.fullname" .)) -}}
{{- end -}}

{{/* roomsvc.shards, checked: the number of roomsvc replicas rooms are sharded over. */}}
{{- define "tuturu.roomsvcShards" -}}
{{- $n := .Values.roomsvc.shards -}}
{{- $number := or (kindIs "float64" $n) (kindIs "int64" $n) (kindIs "int" $n) -}}
{{- if or (not $number) (lt (float64 $n) 1.0) (ne (float64 (int $n)) (float64 $n)) -}}
{{- fail (printf "roomsvc.shards must be a whole number of roomsvc replicas, 1 or more (got %v)" $n) -}}
{{- end -}}
{{- int $n -}}
{{- end -}}

{{/* Where each service is reached inside the cluster. roomsvc by its pods' stable names, one
URL per shard: the gateway opens one stream to each and places rooms by hashing these names,
so shard i keeps its name when shards are added or removed at the end. */}}
{{- define "tuturu.roomsvcURL" -}}
{{- $name := include "tuturu.name" (dict "root" . "service" "roomsvc") -}}
{{- $urls := list -}}
{{- range $i := until (int (include "tuturu.roomsvcShards" .)) -}}
{{- $urls = append $urls (printf "http://%s-%d.%s:%v" $name $i $name $.Values.roomsvc.port) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}
{{- define "tuturu.credsvcURL" -}}
http://{{ include "tuturu.name" (dict "root" . "service" "credsvc") }}:{{ .Values.credsvc.port }}
{{- end -}}

{{/* TURN_HOST: turn.host, else the fixed external IP. */}}
{{- define "tuturu.turnHost" -}}
{{- .Values.turn.host | default .Values.turn.externalIP | required "turn.host is required: the host name or IP that callers reach TURN on (a DNS name with an A record per TURN node, or turn.externalIP)" -}}
{{- end -}}

{{/* The environment every service shares: data directory, log level, tokens, telemetry. */}}
{{- define "tuturu.commonEnv" -}}
- name: DATA_DIR
  value: /data
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "tuturu.tokenSecret" . }}
      key: admin-token
- name: INTERNAL_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "tuturu.tokenSecret" . }}
      key: internal-token
{{- if .Values.otel.endpoint }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.otel.endpoint | quote }}
{{- with .Values.otel.protocol }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ . | quote }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),k8s.node.name=$(NODE_NAME)"
{{- end }}
{{- end -}}

{{/* A service's extra variables (name: value), sorted by name. */}}
{{- define "tuturu.extraEnv" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{- define "tuturu.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}
{{- define "tuturu.securityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end -}}

{{/* Pod scheduling fields shared by every workload; empty when none is set. */}}
{{- define "tuturu.scheduling" -}}
{{- with .svc.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.pullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* "true" when credsvc keeps its state in etcd (credsvc.storage.type etcd), "" for bbolt; fails on
anything else, on etcd without endpoints and on several bbolt replicas. */}}
{{- define "tuturu.credsvcOnEtcd" -}}
{{- $c := .Values.credsvc -}}
{{- $type := $c.storage.type | default "bbolt" -}}
{{- if eq $type "etcd" -}}
{{- if not $c.etcd.endpoints -}}
{{- fail "credsvc.etcd.endpoints is required with credsvc.storage.type etcd: the client URLs of an etcd cluster you run (this chart does not deploy etcd)" -}}
{{- end -}}
{{- if or (not (kindIs "float64" $c.replicas)) (lt (float64 $c.replicas) 1.0) (ne (float64 $c.replicas) (floor $c.replicas)) -}}
{{- fail (printf "credsvc.replicas must be a whole number, 1 or more (got %v)" $c.replicas) -}}
{{- end -}}
true
{{- else if ne $type "bbolt" -}}
{{- fail (printf "credsvc.storage.type must be bbolt or etcd (got %v)" $type) -}}
{{- end -}}
{{- end -}}
