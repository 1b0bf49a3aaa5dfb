{{/*
Helpers of the fleetgen `service` chart. Everything here is a pure function of .Values, .Release and
.Chart: no lookup, no randomness, no clock, so the same values always render the same bytes.
*/}}

{{/* Name of every object and the app.kubernetes.io/name label: nameOverride, else the release name. */}}
{{- define "service.name" -}}
{{- default .Release.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* A label value made safe: at most 63 characters, starting and ending with an alphanumeric. */}}
{{- define "service.labelValue" -}}
{{- regexReplaceAll "^[^A-Za-z0-9]+" (regexReplaceAll "[^A-Za-z0-9]+$" (regexReplaceAll "[^-A-Za-z0-9_.]" (toString .) "_" | trunc 63) "") "" -}}
{{- end -}}

{{/* app.kubernetes.io/version: the image tag, else the chart's appVersion (digest-only images). */}}
{{- define "service.version" -}}
{{- include "service.labelValue" (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Selector labels: stable for the life of the Deployment (a selector is immutable). */}}
{{- define "service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "service.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{/*
Pod selector of the NetworkPolicy and PodDisruptionBudget. With a Flagger Canary the pods of the primary
Deployment (which Flagger creates with app.kubernetes.io/name: <name>-primary and every other pod label
kept: fluxcd/flagger v1.44.0 pkg/canary/util.go makePrimaryLabels) and of the canary are both selected by
app.kubernetes.io/instance; without one, by the Deployment's own selector.
*/}}
{{- define "service.podSelectorLabels" -}}
{{- if .Values.canary.enabled -}}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- else -}}
{{- include "service.selectorLabels" . -}}
{{- end -}}
{{- end -}}

{{/*
All labels: the recommended app.kubernetes.io set plus .Values.labels. The schema forbids
app.kubernetes.io/* keys in .Values.labels, so the two sets never collide; they are merged into one map
anyway and printed sorted, so no key can ever appear twice.
*/}}
{{- define "service.labels" -}}
{{- $standard := dict
  "app.kubernetes.io/name" (include "service.name" .)
  "app.kubernetes.io/instance" .Release.Name
  "app.kubernetes.io/version" (include "service.version" .)
  "app.kubernetes.io/component" .Values.component
  "app.kubernetes.io/part-of" (include "service.labelValue" (default .Release.Namespace .Values.partOf))
  "app.kubernetes.io/managed-by" .Release.Service
-}}
{{- $all := merge $standard (deepCopy .Values.labels) -}}
{{- range $i, $key := keys $all | sortAlpha }}
{{- if $i }}{{ "\n" }}{{ end }}
{{- $key }}: {{ get $all $key | toString | quote }}
{{- end -}}
{{- end -}}

{{/* Common metadata block (name, namespace, labels) of every namespaced object. */}}
{{- define "service.metadata" -}}
name: {{ include "service.name" . }}
namespace: {{ .Release.Namespace }}
labels:
  {{- include "service.labels" . | nindent 2 }}
{{- end -}}

{{/* The container image: repository@digest when a digest is set, else repository:tag. */}}
{{- define "service.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}
{{- end -}}

{{/* ServiceAccount the pods run as. */}}
{{- define "service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- include "service.name" . -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/* The fewest replicas that run: minReplicas under autoscaling, else replicas. */}}
{{- define "service.minReplicas" -}}
{{- if .Values.autoscaling.enabled -}}
{{- int .Values.autoscaling.minReplicas -}}
{{- else -}}
{{- int .Values.replicas -}}
{{- end -}}
{{- end -}}

{{/*
Checks across values that JSON schema cannot express. Each fails `helm template` with the value's
path and what was expected.
*/}}
{{- define "service.validate" -}}
{{- $name := include "service.name" . -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "name %q (nameOverride, else the release name) must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter" $name) -}}
{{- end -}}
{{- if and (not .Values.image.tag) (not .Values.image.digest) -}}
{{- fail "image: set image.tag or image.digest" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail (printf "autoscaling.minReplicas (%d) must not exceed autoscaling.maxReplicas (%d)" (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- $min := int (include "service.minReplicas" .) -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if and $pdb.enabled (gt $min 1) (not (kindIs "string" $pdb.minAvailable)) (ge (int $pdb.minAvailable) $min) -}}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be less than the replica count (%d), or no voluntary disruption (node drain) is ever allowed" (int $pdb.minAvailable) $min) -}}
{{- end -}}
{{- if and .Values.canary.enabled (not .Values.service.enabled) -}}
{{- fail "canary.enabled requires service.enabled: Flagger creates the Services from service.port" -}}
{{- end -}}
{{- if and .Values.canary.enabled (eq .Values.canary.provider "gatewayapi:v1") (not .Values.route.enabled) -}}
{{- fail "canary.provider gatewayapi:v1 shifts traffic on the HTTPRoute: it needs route.enabled (or use provider kubernetes)" -}}
{{- end -}}
{{- if and .Values.route.enabled (not .Values.service.enabled) -}}
{{- fail "route.enabled requires service.enabled: the HTTPRoute sends traffic to the Service" -}}
{{- end -}}
{{- end -}}

{{/*
NetworkPolicy ingress rule of pods in the Istio ambient mesh: ztunnel SNATs the kubelet's probes to
169.254.7.127 (istio.io "Ambient and Kubernetes NetworkPolicy").
*/}}
{{- define "service.probeIngress" -}}
# kubelet probes of ambient pods, SNATed by ztunnel to this link-local address
- from:
    - ipBlock:
        cidr: 169.254.7.127/32
  ports:
    - port: {{ int .Values.containerPort }}
      protocol: TCP
{{- end }}

{{/*
Gateway API ParentReferences (route.extraParentRefs) as a YAML list, fields in the API's order; used by the
HTTPRoute's parentRefs and the Canary's gatewayRefs, which Flagger copies into the HTTPRoute it owns.
*/}}
{{- define "service.parentRefs" -}}
{{- range . }}
- group: {{ default "gateway.networking.k8s.io" .group | quote }}
  kind: {{ default "Gateway" .kind | quote }}
  name: {{ required "route.extraParentRefs[].name is required" .name | quote }}
  {{- with .namespace }}
  namespace: {{ . | quote }}
  {{- end }}
  {{- with .sectionName }}
  sectionName: {{ . | quote }}
  {{- end }}
  {{- with .port }}
  port: {{ int . }}
  {{- end }}
{{- end }}
{{- end }}
