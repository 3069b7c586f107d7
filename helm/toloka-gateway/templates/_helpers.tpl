{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "toloka-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: the release name, plus the chart name unless the release already contains it. */}}
{{- define "toloka-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "toloka-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the pods; never change them on upgrade. */}}
{{- define "toloka-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "toloka-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "toloka-gateway.labels" -}}
helm.sh/chart: {{ include "toloka-gateway.chart" . }}
{{ include "toloka-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: toloka-gateway
{{- end }}

{{- define "toloka-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "toloka-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "toloka-gateway.image" -}}
{{- $image := .Values.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository ($image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the pods share state through Redis. */}}
{{- define "toloka-gateway.usesRedis" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret.name }}true{{ end }}
{{- end }}

{{/*
The REDIS_URL value built from redis.url: rediss:// when redis.tls, `:$(REDIS_PASSWORD)@` inserted
when redis.passwordSecret is set and the URL does not reference it yet, `cluster=1` when
redis.cluster. Kubernetes expands $(REDIS_PASSWORD) from the env var defined just before REDIS_URL,
so the password never appears in a manifest. A literal password in the URL fails rendering.
*/}}
{{- define "toloka-gateway.redisUrl" -}}
{{- $r := .Values.redis }}
{{- $ref := "$(REDIS_PASSWORD)" }}
{{- $scheme := regexFind "^rediss?://" $r.url }}
{{- $rest := trimPrefix $scheme $r.url }}
{{- if $r.tls }}{{ $scheme = "rediss://" }}{{ end }}
{{- $authority := regexFind "^[^/?#]*" $rest }}
{{- $userinfo := "" }}
{{- if contains "@" $authority }}
{{- $userinfo = regexReplaceAll "@[^@]*$" $authority "" }}
{{- $rest = trimPrefix (printf "%s@" $userinfo) $rest }}
{{- end }}
{{- if and (contains ":" $userinfo) (not (hasSuffix (printf ":%s" $ref) $userinfo)) }}
{{- fail "redis.url must not contain a password: put it in a Secret and set redis.passwordSecret (the URL may reference it as $(REDIS_PASSWORD)), or use redis.existingSecret" }}
{{- end }}
{{- if and (contains $ref $r.url) (not $r.passwordSecret.name) }}
{{- fail "redis.url references $(REDIS_PASSWORD) but redis.passwordSecret.name is not set" }}
{{- end }}
{{- if and $r.passwordSecret.name (not (contains $ref $userinfo)) }}
{{- $userinfo = printf "%s:%s" $userinfo $ref }}
{{- end }}
{{- $url := printf "%s%s" $scheme $rest }}
{{- if $userinfo }}{{ $url = printf "%s%s@%s" $scheme $userinfo $rest }}{{ end }}
{{- if and $r.cluster (not (regexMatch "[?&]cluster=" $url)) }}
{{- $url = printf "%s%scluster=1" $url (ternary "&" "?" (contains "?" $url)) }}
{{- end }}
{{- $url }}
{{- end }}

{{/* Stops rendering on values that validate one by one but not together. */}}
{{- define "toloka-gateway.validate" -}}
{{- $drain := float64 .Values.server.drainGraceSeconds }}
{{- $needed := addf $drain (float64 .Values.preStopSleepSeconds) }}
{{- if not (gt (float64 .Values.terminationGracePeriodSeconds) $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be larger than preStopSleepSeconds (%v) + server.drainGraceSeconds (%v), or Kubernetes kills pods before in-flight calls drain" .Values.terminationGracePeriodSeconds .Values.preStopSleepSeconds .Values.server.drainGraceSeconds) }}
{{- end }}
{{- $r := .Values.redis }}
{{- if and $r.url $r.existingSecret.name }}
{{- fail "set either redis.url or redis.existingSecret.name, not both" }}
{{- end }}
{{- if and $r.existingSecret.name (or $r.tls $r.cluster $r.passwordSecret.name) }}
{{- fail "with redis.existingSecret the Secret holds the whole URL: write rediss://, ?cluster=1 and the password into it and leave redis.tls, redis.cluster and redis.passwordSecret unset" }}
{{- end }}
{{- if and (not (include "toloka-gateway.usesRedis" .)) (or $r.tls $r.cluster $r.passwordSecret.name) }}
{{- fail "redis.tls, redis.cluster and redis.passwordSecret need redis.url" }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (eq (kindIs "invalid" $pdb.maxUnavailable) (kindIs "invalid" $pdb.minAvailable)) }}
{{- fail "podDisruptionBudget: set exactly one of maxUnavailable and minAvailable (the other null)" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- end }}

{{/* One rate limit as a TOML inline table, keys as gateway/settings.py reads them. */}}
{{- define "toloka-gateway.tomlLimit" -}}
{ name = {{ .name | toJson }}, kinds = {{ .kinds | default (list "*") | toJson }}, capacity = {{ .capacity | int64 }}, period = {{ .period | toJson }}, unit = {{ .unit | default "requests" | toJson }} }
{{- end }}

{{/* A list of rate limits as a TOML array of inline tables. */}}
{{- define "toloka-gateway.tomlLimits" -}}
[
{{- range . }}
  {{ include "toloka-gateway.tomlLimit" . }},
{{- end }}
]
{{- end }}
