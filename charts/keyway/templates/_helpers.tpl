{{/* Chart name. */}}
{{- define "keyway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every resource name (at most 50 characters, so suffixes fit in 63). */}}
{{- define "keyway.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "keyway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "keyway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of a component: (dict "ctx" $ "component" "operator"). */}}
{{- define "keyway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyway.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "keyway.componentLabels" -}}
{{ include "keyway.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Image reference: (dict "ctx" $ "image" .Values.x.image): repository:tag, or
  repository@sha256:… when the tag is a digest. */}}
{{- define "keyway.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .image.tag -}}
{{- if hasPrefix "sha256:" $tag -}}
{{- printf "%s@%s" .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "keyway.operator.fullname" -}}{{ include "keyway.fullname" . }}-operator{{- end -}}
{{- define "keyway.issuer.fullname" -}}{{ include "keyway.fullname" . }}-issuer{{- end -}}
{{- define "keyway.webhook.fullname" -}}{{ include "keyway.fullname" . }}-webhook{{- end -}}
{{- define "keyway.webhook.service" -}}{{ include "keyway.fullname" . }}-webhook{{- end -}}
{{- define "keyway.webhook.certSecret" -}}{{ include "keyway.fullname" . }}-webhook-tls{{- end -}}
{{- /* The Secret the issuer mounts its signing keys from: existingSecret, else the managed one, else none (keys on the issuer's volume). */ -}}
{{- define "keyway.issuer.signingKeysSecret" -}}
{{- $k := .Values.issuer.signingKeys -}}
{{- if $k.existingSecret }}{{ $k.existingSecret }}{{ else if $k.managed }}{{ include "keyway.issuer.fullname" . }}-signing-keys{{ end -}}
{{- end -}}
{{- /* Seconds in a duration such as 720h or 1h30m: digits followed by h, m or s, as the
  operator parses it (values.schema.json has already checked the syntax). */ -}}
{{- define "keyway.durationSeconds" -}}
{{- $total := 0 -}}
{{- range regexFindAll "[0-9]+[hms]" . -1 -}}
{{- $unit := get (dict "h" 3600 "m" 60 "s" 1) (regexFind "[hms]$" .) -}}
{{- $total = add $total (mul (atoi (regexFind "^[0-9]+" .)) $unit) -}}
{{- end -}}
{{- $total -}}
{{- end -}}
{{- define "keyway.issuer.signingKeysManaged" -}}
{{- if and .Values.issuer.signingKeys.managed (not .Values.issuer.signingKeys.existingSecret) }}true{{ end -}}
{{- end -}}
{{- define "keyway.webhook.configuration" -}}{{ include "keyway.fullname" . }}{{- end -}}

{{- define "keyway.operator.serviceAccountName" -}}
{{- default (include "keyway.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- define "keyway.webhook.serviceAccountName" -}}
{{- default (include "keyway.webhook.fullname" .) .Values.operator.webhook.serviceAccount.name -}}
{{- end -}}
{{- define "keyway.issuer.serviceAccountName" -}}
{{- default (include "keyway.issuer.fullname" .) .Values.issuer.serviceAccount.name -}}
{{- end -}}

{{/* Pod-level security context shared by keyway's pods. */}}
{{- define "keyway.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context shared by keyway's containers. */}}
{{- define "keyway.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The issuer's volume: the PVC in sqlite mode. */}}
{{- define "keyway.issuer.claimName" -}}
{{- default (printf "%s-data" (include "keyway.issuer.fullname" .)) .Values.issuer.store.sqlite.existingClaim -}}
{{- end -}}

{{/* operator.resourceHosts as the value of --resource-hosts (the operator's and the issuer's). */}}
{{- define "keyway.resourceHosts" -}}
{{- $bindings := list -}}
{{- range $pattern, $namespaces := .Values.operator.resourceHosts -}}
{{- $bindings = append $bindings (printf "%s=%s" $pattern (join "," $namespaces)) -}}
{{- end -}}
{{- join " " $bindings -}}
{{- end -}}
