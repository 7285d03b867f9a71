{{- define "keygate-gateway.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keygate-gateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "keygate-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keygate-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "keygate-gateway.labels" -}}
{{ include "keygate-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "keygate-gateway.claimName" -}}
{{- default (printf "%s-data" (include "keygate-gateway.fullname" .)) .Values.persistence.existingClaim -}}
{{- end -}}

{{/* The gateway config: .Values.config, with the store, identities and audit in PostgreSQL when postgres.enabled. */}}
{{- define "keygate-gateway.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $pg := .Values.postgres -}}
{{- if $pg.enabled -}}
{{- $store := dict "url" $pg.url "passwordFile" (printf "/etc/keygate/secrets/db/%s" $pg.passwordSecret.key) "poolSize" (int $pg.poolSize) "migrate" $pg.migrate -}}
{{- if $pg.tls.secretName -}}
{{- $ssl := dict "caFile" (printf "/etc/keygate/db-tls/%s" $pg.tls.caKey) -}}
{{- if $pg.tls.certKey -}}
{{- $_ := set $ssl "certFile" (printf "/etc/keygate/db-tls/%s" $pg.tls.certKey) -}}
{{- $_ := set $ssl "keyFile" (printf "/etc/keygate/db-tls/%s" $pg.tls.keyKey) -}}
{{- end -}}
{{- if $pg.tls.serverName -}}
{{- $_ := set $ssl "serverName" $pg.tls.serverName -}}
{{- end -}}
{{- $_ := set $store "ssl" $ssl -}}
{{- end -}}
{{- $_ := set $cfg "store" (dict "postgres" $store) -}}
{{- if $pg.identities -}}
{{- $_ := unset $cfg "identities" -}}
{{- end -}}
{{- if $pg.audit -}}
{{- $_ := set $cfg "audit" (dict "target" "postgres" "signingKeyFile" .Values.config.audit.signingKeyFile) -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Whether the pods need the data volume (a file store, or file audit logs). */}}
{{- define "keygate-gateway.needsData" -}}
{{- if not (and .Values.postgres.enabled .Values.postgres.audit) -}}true{{- end -}}
{{- end -}}
