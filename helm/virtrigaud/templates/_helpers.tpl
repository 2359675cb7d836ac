{{/* Names, labels and generated secrets shared by the templates. */}}

{{- define "virtrigaud.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name prefix: the release name when it already contains the chart name. */}}
{{- define "virtrigaud.fullname" -}}
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

{{- define "virtrigaud.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "virtrigaud.labels" -}}
helm.sh/chart: {{ include "virtrigaud.chart" . }}
app.kubernetes.io/name: {{ include "virtrigaud.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: virtrigaud
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The hook server's pods: selector labels (also the NetworkPolicies' peer) and all labels. */}}
{{- define "virtrigaud.hooks.selectorLabels" -}}
app.kubernetes.io/name: {{ include "virtrigaud.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: hooks
{{- end }}

{{- define "virtrigaud.hooks.labels" -}}
{{ include "virtrigaud.labels" . }}
app.kubernetes.io/component: hooks
{{- end }}

{{/* Deployment, Service, ServiceAccount and PodDisruptionBudget of the hook server. */}}
{{- define "virtrigaud.hooks.name" -}}
{{- printf "%s-hooks" (include "virtrigaud.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "virtrigaud.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "virtrigaud.hookToken.secretName" -}}
{{- default (printf "%s-hook-token" (include "virtrigaud.fullname" .)) .Values.hooks.auth.existingSecret }}
{{- end }}

{{- define "virtrigaud.providerToken.secretName" -}}
{{- default (printf "%s-provider-token" (include "virtrigaud.fullname" .)) .Values.providers.tokenSecret.existingSecret }}
{{- end }}

{{/*
A generated secret value, the same in every template of one render: the Secret, and the checksum
annotations that restart the hook server and re-create Metacontroller's webhook clients when it
changes. Under Helm, lookup keeps the value of the Secret already in the cluster, so upgrades keep
it; where lookup finds nothing (first install, `helm template`, Argo CD, helm-render), a new one is
generated: give an existing Secret for stable values there.
Call with (dict "context" $ "id" "hookToken" "secretName" NAME "key" KEY).
*/}}
{{- define "virtrigaud.generatedSecret" -}}
{{- $memo := .context.Values._generated | default dict }}
{{- if not (hasKey $memo .id) }}
{{- $value := "" }}
{{- $existing := lookup "v1" "Secret" .context.Release.Namespace .secretName }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- $value = index $existing.data .key | b64dec }}
{{- else }}
{{- $value = randAlphaNum 48 }}
{{- end }}
{{- $_ := set $memo .id $value }}
{{- $_ := set .context.Values "_generated" $memo }}
{{- end }}
{{- index $memo .id }}
{{- end }}

{{- define "virtrigaud.hookToken" -}}
{{- include "virtrigaud.generatedSecret" (dict "context" . "id" "hookToken" "secretName" (include "virtrigaud.hookToken.secretName" .) "key" .Values.hooks.auth.secretKey) }}
{{- end }}

{{- define "virtrigaud.providerTokenSecret" -}}
{{- include "virtrigaud.generatedSecret" (dict "context" . "id" "providerTokenSecret" "secretName" (include "virtrigaud.providerToken.secretName" .) "key" "secret") }}
{{- end }}

{{/* Fails the render on values the chart cannot honour. */}}
{{- define "virtrigaud.validate" -}}
{{- if .Values.metacontroller.install }}
{{- fail "metacontroller.install: this chart does not bundle Metacontroller; install it first (see the chart README) and leave metacontroller.install false" }}
{{- end }}
{{- if hasKey .Values.hooks.auth "enabled" }}
{{- fail "hooks.auth.enabled is gone: the hook server always requires the bearer token (open hooks would create and delete VMs for anyone who reaches the Service)" }}
{{- end }}
{{- if and .Values.hooks.tls.enabled (not .Values.hooks.tls.secretName) }}
{{- fail "hooks.tls.secretName is required when hooks.tls.enabled is true" }}
{{- end }}
{{- if not (has (toString .Values.crdUpgrade.enabled) (list "true" "false")) }}
{{- fail (printf "crdUpgrade.enabled must be true or false, not %v" .Values.crdUpgrade.enabled) }}
{{- end }}
{{- /* The seed's install flags: providers run only as Provider CRs, so false is the only mode. */}}
{{- $flags := list }}
{{- $types := list }}
{{- range $type, $enabled := dict "vsphere" .Values.providers.vsphere "libvirt" .Values.providers.libvirt "proxmox" .Values.providers.proxmox }}
{{- if kindIs "map" $enabled }}
{{- $enabled = $enabled.enabled }}
{{- end }}
{{- if and $enabled (ne (toString $enabled) "false") }}
{{- $flags = append $flags (printf "providers.%s.enabled=%v" $type $enabled) }}
{{- $types = append $types $type }}
{{- end }}
{{- end }}
{{- if $flags }}
{{- fail (printf "%s %s not supported: this chart never deploys a provider itself, Provider CRs deploy provider runtimes. Leave providers.*.enabled false (the default) and create a Provider CR (apiVersion infra.virtrigaud.io/v1beta1, kind Provider, spec.type %s) per hypervisor: Metacontroller then deploys its runtime from the Provider hook's answer" (join ", " $flags) (ternary "is" "are" (eq (len $flags) 1)) (join " or " $types)) }}
{{- end }}
{{- end }}
