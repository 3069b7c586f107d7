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
The REDIS_URL value built from redis.url: rediss:// when redis.tls, `cluster=1` when redis.cluster.
The password is never put into the URL: with redis.passwordSecret it reaches the gateway as env
REDIS_PASSWORD, which the gateway uses when the URL carries no password. A URL written for older
chart versions with `user:$(REDIS_PASSWORD)@` is passed through (Kubernetes expands the reference from
the env var defined just before REDIS_URL). A literal password in the URL fails rendering.
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
{{- end }}
{{- if and (contains ":" $userinfo) (not (hasSuffix (printf ":%s" $ref) $userinfo)) }}
{{- fail "redis.url must not contain a password: put it in a Secret and set redis.passwordSecret (the gateway reads it as REDIS_PASSWORD), or use redis.existingSecret" }}
{{- end }}
{{- if and (contains $ref $r.url) (not $r.passwordSecret.name) }}
{{- fail "redis.url references $(REDIS_PASSWORD) but redis.passwordSecret.name is not set" }}
{{- end }}
{{- $url := printf "%s%s" $scheme $rest }}
{{- if and $r.cluster (not (regexMatch "[?&]cluster=" $url)) }}
{{- $url = printf "%s%scluster=1" $url (ternary "&" "?" (contains "?" $url)) }}
{{- end }}
{{- $url }}
{{- end }}

{{/* Where the auth Secrets are mounted in the container (config [auth] paths point here). */}}
{{- define "toloka-gateway.authTokensFile" -}}/var/run/secrets/toloka-gateway/auth-tokens/tokens.toml{{- end }}
{{- define "toloka-gateway.tlsDir" -}}/var/run/secrets/toloka-gateway/tls{{- end }}
{{- define "toloka-gateway.clientCaDir" -}}/var/run/secrets/toloka-gateway/client-ca{{- end }}
{{- define "toloka-gateway.clientCaFile" -}}
{{- if .Values.auth.clientCaSecret.name }}
{{- include "toloka-gateway.clientCaDir" . }}/ca.crt
{{- else }}
{{- include "toloka-gateway.tlsDir" . }}/ca.crt
{{- end }}
{{- end }}

{{/* Fails rendering unless the Secrets auth.mode needs are named, and when Secrets are named that it would not use. */}}
{{- define "toloka-gateway.validateAuth" -}}
{{- $a := .Values.auth }}
{{- if and (eq $a.mode "token") (not $a.tokensSecret.name) }}
{{- fail "auth.mode=token needs auth.tokensSecret.name: the name of an existing Secret holding the tokens file, TOML `caller = \"token\"` lines (create it with `kubectl create secret generic gateway-tokens --from-file=tokens.toml`)" }}
{{- end }}
{{- if and $a.tokensSecret.name (ne $a.mode "token") }}
{{- fail (printf "auth.tokensSecret.name is set but auth.mode is %q: tokens are only read with auth.mode=token" $a.mode) }}
{{- end }}
{{- if and (eq $a.mode "mtls") (not $a.tlsSecret.name) }}
{{- fail "auth.mode=mtls needs auth.tlsSecret.name: the name of an existing kubernetes.io/tls Secret with tls.crt and tls.key (and ca.crt, the CA of the client certificates, unless auth.clientCaSecret.name is set)" }}
{{- end }}
{{- if and (or $a.tlsSecret.name $a.clientCaSecret.name) (ne $a.mode "mtls") }}
{{- fail (printf "auth.tlsSecret / auth.clientCaSecret are set but auth.mode is %q: they are only used with auth.mode=mtls" $a.mode) }}
{{- end }}
{{- end }}

{{/*
Toloka accounts (values `accounts`): each account's key is its Secret's one key, mounted read-only at
<accountsDir>/<account>/api-key; config [accounts.<account>] api_key_file points there.
*/}}
{{- define "toloka-gateway.accountsDir" -}}/var/run/secrets/toloka-gateway/accounts{{- end }}
{{- define "toloka-gateway.accountKeyFile" -}}
{{- include "toloka-gateway.accountsDir" "" }}/{{ . }}/api-key
{{- end }}
{{/* The volume of an account's Secret: a DNS label whatever the account name (`_` allowed there). */}}
{{- define "toloka-gateway.accountVolume" -}}
{{- printf "account-%s-%s" (. | replace "_" "-") (sha256sum . | trunc 8) }}
{{- end }}

{{/* The accounts callers may use: the names in `accounts`, or `default` (the one account) without them. */}}
{{- define "toloka-gateway.accountNames" -}}
{{- if .Values.accounts }}{{ keys .Values.accounts | sortAlpha | join ", " }}{{ else }}default{{ end }}
{{- end }}

{{/* The account of calls that name none: `default` if declared, else the first in the config (names sort). */}}
{{- define "toloka-gateway.defaultAccount" -}}
{{- if .Values.defaultAccount }}{{ .Values.defaultAccount }}{{ else if hasKey .Values.accounts "default" }}default{{ else }}{{ keys .Values.accounts | sortAlpha | first }}{{ end }}
{{- end }}

{{/* Fails rendering on an account the gateway would refuse, and on single-account values that `accounts` replaces. */}}
{{- define "toloka-gateway.validateAccounts" -}}
{{- $accounts := .Values.accounts | default dict }}
{{- range $name, $a := $accounts }}
{{- if not (regexMatch "^[a-z][a-z0-9_-]{0,31}$" $name) }}
{{- fail (printf "accounts: %q is not a valid account name: 1-32 characters of a-z, 0-9, '-' and '_', starting with a letter" $name) }}
{{- end }}
{{- if not (kindIs "map" $a) }}
{{- fail (printf "accounts.%s must be a map: {url, existingSecret, secretKey, ...}" $name) }}
{{- end }}
{{- if not $a.url }}
{{- fail (printf "accounts.%s.url is required: the account's Toloka URL (https://toloka.dev, https://sandbox.toloka.dev, or emulator)" $name) }}
{{- end }}
{{- if and (not $a.existingSecret) (ne $a.url "emulator") }}
{{- fail (printf "accounts.%s.existingSecret is required: the name of an existing Secret that holds the account's Toloka API key (create it with `kubectl create secret generic toloka-%s --from-literal=api-key=...`)" $name $name) }}
{{- end }}
{{- end }}
{{- if $accounts }}
{{- if .Values.toloka.apiKeySecret.name }}
{{- fail "toloka.apiKeySecret.name is set, but with `accounts` every account has its own key: give it to an account (accounts.<name>.existingSecret; name that account `default` to keep the Redis keys of a one-account gateway) and leave toloka.apiKeySecret.name empty" }}
{{- end }}
{{- if .Values.toloka.actUnderAccountId }}
{{- fail "toloka.actUnderAccountId is set, but with `accounts` it is not used: set accounts.<name>.actUnderAccountId instead" }}
{{- end }}
{{- end }}
{{- $known := include "toloka-gateway.accountNames" . }}
{{- $names := ternary (keys $accounts) (list "default") (gt (len $accounts) 0) }}
{{- with .Values.defaultAccount }}
{{- if not (has . $names) }}
{{- fail (printf "defaultAccount: %q is not an account of this gateway (accounts: %s)" . $known) }}
{{- end }}
{{- end }}
{{- $granted := dict "auth.default" (.Values.auth.default | default dict) }}
{{- range $caller, $perms := .Values.auth.callers }}
{{- $_ := set $granted (printf "auth.callers.%s" $caller) ($perms | default dict) }}
{{- end }}
{{- $default := include "toloka-gateway.defaultAccount" $ }}
{{- range $where, $perms := $granted }}
{{- range $perms.accounts | default list }}
{{- if not (has . $names) }}
{{- fail (printf "%s.accounts: %q is not an account of this gateway (accounts: %s)" $where . $known) }}
{{- end }}
{{- end }}
{{- $usable := $perms.accounts | default (list (ternary $default "default" (gt (len $accounts) 0))) }}
{{- range $account, $_ := $perms.perAccount | default dict }}
{{- if not (has $account $usable) }}
{{- fail (printf "%s.perAccount.%s: the caller may not use account %q (its accounts: %s)" $where $account $account (join ", " $usable)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Seconds of NOT_SERVING between SIGTERM and the listener closing (env GATEWAY_SHUTDOWN_DELAY):
server.shutdownDelaySeconds, or when null the time the readiness probe needs to see the change
(periodSeconds x failureThreshold) plus server.shutdownDelayMarginSeconds for it to propagate.
*/}}
{{- define "toloka-gateway.shutdownDelaySeconds" -}}
{{- $server := .Values.server }}
{{- if kindIs "invalid" $server.shutdownDelaySeconds }}
{{- $r := .Values.probes.readiness }}
{{- addf (mulf (float64 $r.periodSeconds) (float64 $r.failureThreshold)) (float64 $server.shutdownDelayMarginSeconds) }}
{{- else }}
{{- float64 $server.shutdownDelaySeconds }}
{{- end }}
{{- end }}

{{/* Stops rendering on values that validate one by one but not together. */}}
{{- define "toloka-gateway.validate" -}}
{{- $drain := float64 .Values.server.drainGraceSeconds }}
{{- $delay := float64 (include "toloka-gateway.shutdownDelaySeconds" .) }}
{{- $needed := addf $drain $delay (float64 .Values.preStopSleepSeconds) }}
{{- if not (gt (float64 .Values.terminationGracePeriodSeconds) $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be larger than preStopSleepSeconds (%v) + the shutdown delay (%v) + server.drainGraceSeconds (%v), or Kubernetes kills pods before in-flight calls drain" .Values.terminationGracePeriodSeconds .Values.preStopSleepSeconds $delay .Values.server.drainGraceSeconds) }}
{{- end }}
{{- $r := .Values.redis }}
{{- if and $r.url $r.existingSecret.name }}
{{- fail "set either redis.url or redis.existingSecret.name, not both" }}
{{- end }}
{{- if and $r.existingSecret.name (or $r.tls $r.cluster) }}
{{- fail "with redis.existingSecret the Secret holds the whole URL: write rediss:// and ?cluster=1 into it and leave redis.tls and redis.cluster unset" }}
{{- end }}
{{- if and (not (include "toloka-gateway.usesRedis" .)) (or $r.tls $r.cluster $r.passwordSecret.name) }}
{{- fail "redis.tls, redis.cluster and redis.passwordSecret need redis.url or redis.existingSecret" }}
{{- end }}
{{- include "toloka-gateway.validateAuth" . }}
{{- include "toloka-gateway.validateAccounts" . }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (eq (kindIs "invalid" $pdb.maxUnavailable) (kindIs "invalid" $pdb.minAvailable)) }}
{{- fail "podDisruptionBudget: set exactly one of maxUnavailable and minAvailable (the other null)" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- end }}

{{/* One rate limit as a TOML inline table, keys as gateway/settings/ reads them. */}}
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

{{/* Permissions ({methods, pools, rest, accounts}) as the TOML keys gateway/settings/ reads; an omitted list means ["*"]. */}}
{{- define "toloka-gateway.tomlPermissions" -}}
methods = {{ (hasKey . "methods" | ternary .methods (list "*")) | toJson }}
pools = {{ (hasKey . "pools" | ternary .pools (list "*")) | toJson }}
{{- if hasKey . "rest" }}
rest = {{ .rest | toJson }}
{{- end }}
{{- if hasKey . "accounts" }}
accounts = {{ .accounts | toJson }}
{{- end }}
{{- end }}

{{/* A caller's rights in one account (perAccount.<account>): only what it names; the rest stays the caller's. */}}
{{- define "toloka-gateway.tomlRights" -}}
{{- range $key := list "methods" "pools" "rest" }}
{{- if hasKey $ $key }}
{{ $key }} = {{ get $ $key | toJson }}
{{- end }}
{{- end }}
{{- end }}
