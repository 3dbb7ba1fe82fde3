{{/*
Labels every object carries (Kubernetes' recommended app.kubernetes.io/* labels,
https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/) and the
pod template's own labels and annotations from a `scheduling:` block.
*/}}

{{/*
<chart>-<version> for the helm.sh/chart label: "+" (semver build metadata) is not allowed
in a label value, which is 63 characters at most.
*/}}
{{- define "lakeport.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The labels a Service or a workload selects its pods by: name, instance (the release) and
component. Selectors of Deployments and StatefulSets cannot change after creation, so
these are the stable subset of lakeport.labels.
Usage: include "lakeport.selectorLabels" (list . "webserver")
*/}}
{{- define "lakeport.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "lakeport.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/*
Every label of a lakeport object: the selector labels plus chart, version, manager and
part-of. The instance label is what the release's NetworkPolicy admits.
Usage: include "lakeport.labels" (list . "webserver")
*/}}
{{- define "lakeport.labels" -}}
{{- $ctx := index . 0 -}}
{{ include "lakeport.selectorLabels" . }}
helm.sh/chart: {{ include "lakeport.chart" $ctx }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: lakeport
{{- end -}}

{{/* The pod template's own annotations from a `scheduling:` block: YAML lines (nothing
when unset), appended below the chart's checksums. Usage: include "lakeport.podAnnotations" $w.scheduling */}}
{{- define "lakeport.podAnnotations" -}}
{{- with (. | default dict).podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
{{/* The pod template's own labels from a `scheduling:` block: YAML lines (nothing when
unset), appended below lakeport.labels. Usage: include "lakeport.podLabels" $w.scheduling */}}
{{- define "lakeport.podLabels" -}}
{{- with (. | default dict).podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}
