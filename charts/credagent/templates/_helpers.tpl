{{/*
Names. Every name and label value is at most 63 characters (DNS labels,
label values): the chart's name, the fullname prefix, and component names
`<fullname>-<component>` with the prefix cut to leave room for the suffix.
*/}}
{{- define "credagent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "credagent.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* (dict "root" $ "component" "webhook") -> <fullname>-webhook, at most 63 characters. */}}
{{- define "credagent.componentName" -}}
{{- $suffix := printf "-%s" .component -}}
{{- $prefix := include "credagent.fullname" .root | trunc (int (sub 63 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s%s" $prefix $suffix -}}
{{- end -}}

{{- define "credagent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: (dict "root" $ "component" "node"). Never change them: selectors are immutable. */}}
{{- define "credagent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "credagent.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
All labels: the selector labels, then commonLabels (which cannot override
them), then the standard ones (which commonLabels can).
*/}}
{{- define "credagent.labels" -}}
{{- $selector := include "credagent.selectorLabels" . | fromYaml -}}
{{- $standard := dict
  "app.kubernetes.io/version" (.root.Chart.AppVersion | replace "+" "_" | trunc 63 | trimSuffix "-")
  "app.kubernetes.io/managed-by" .root.Release.Service
  "app.kubernetes.io/part-of" "credagent"
  "helm.sh/chart" (include "credagent.chart" .root) -}}
{{- $labels := merge (dict) $selector (deepCopy (.root.Values.commonLabels | default dict)) $standard -}}
{{- toYaml $labels -}}
{{- end -}}

{{/* The credagent image: repository@digest, or repository:tag (default: appVersion). */}}
{{- define "credagent.image" -}}
{{- $repo := required "image.repository is required: where the image built from the repository's Dockerfile lives (e.g. registry.example.com/credagent)" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "credagent.testImage" -}}
{{- $i := .Values.tests.image -}}
{{- if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository $i.tag -}}
{{- end -}}
{{- end -}}

{{/* CREDAGENT_ORG_ID or CREDAGENT_EXCHANGE_URL, as ConfigMap data: exactly one. */}}
{{- define "credagent.upstreamEnv" -}}
{{- $u := .Values.upstream -}}
{{- if and $u.orgId $u.exchangeUrl -}}
{{- fail "upstream.orgId and upstream.exchangeUrl are both set: give exactly one" -}}
{{- else if $u.orgId -}}
CREDAGENT_ORG_ID: {{ $u.orgId | quote }}
{{- else if $u.exchangeUrl -}}
CREDAGENT_EXCHANGE_URL: {{ $u.exchangeUrl | quote }}
{{- else -}}
{{- fail "upstream.orgId (your CoreWeave organization id) or upstream.exchangeUrl is required" -}}
{{- end -}}
{{- end -}}

{{/* upstream.keyAttributes as CREDAGENT_KEY_ATTRIBUTE takes them: NAME=VALUE,... in name order. */}}
{{- define "credagent.keyAttributes" -}}
{{- $pairs := list -}}
{{- range $k, $v := .Values.upstream.keyAttributes -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* Namespaces the webhook is never sent Pods from: its own, kube-system, and webhook.excludeNamespaces. */}}
{{- define "credagent.webhook.excludedNamespaces" -}}
{{- $ns := list .Release.Namespace "kube-system" -}}
{{- range .Values.webhook.excludeNamespaces -}}
{{- $ns = append $ns . -}}
{{- end -}}
{{- toJson (uniq $ns) -}}
{{- end -}}

{{- define "credagent.webhook.tlsSecretName" -}}
{{- include "credagent.componentName" (dict "root" . "component" "webhook-tls") -}}
{{- end -}}

{{/*
The node agent's resources. limits.memory, unless set, is the worst case its
bounds allow plus a third (docs/deploy.md, "Sizing"), rounded up to 16 MiB:
  8 MiB + 11.5 KiB x identities + 36 KiB x connections + 8 KiB x pending fills
computed in half-KiB units to stay in integers.
*/}}
{{- define "credagent.node.resources" -}}
{{- $r := deepCopy .Values.node.resources -}}
{{- $limits := $r.limits | default dict -}}
{{- if not $limits.memory -}}
{{- $n := .Values.node -}}
{{- $halfKiB := add 16384 (mul 23 (int $n.maxIdentities)) (mul 72 (int $n.maxConnections)) (mul 16 (int $n.maxPendingFills)) -}}
{{- /* x 4/3, in units of 16 MiB = 32768 half-KiB: ceil(halfKiB x 4 / (3 x 32768)) */ -}}
{{- $units := div (add (mul $halfKiB 4) 98303) 98304 -}}
{{- $_ := set $limits "memory" (printf "%dMi" (mul $units 16)) -}}
{{- $_ := set $r "limits" $limits -}}
{{- end -}}
{{- toYaml $r -}}
{{- end -}}

{{- define "credagent.monitoring.namespace" -}}
{{- .Values.monitoring.namespace | default .Release.Namespace -}}
{{- end -}}

{{- define "credagent.tests.serviceAccountName" -}}
{{- .Values.tests.serviceAccount.name | default (include "credagent.componentName" (dict "root" . "component" "test")) -}}
{{- end -}}
