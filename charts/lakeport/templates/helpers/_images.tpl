{{/*
repository[:tag][@digest] of an `Image` of platform.yaml (images.*, codeLocations[].image),
as lakeport.platform.Image.reference renders it: with both a tag and a digest, the
container runtime pulls by the digest.
*/}}
{{- define "lakeport.image" -}}
{{- .repository -}}{{- with .tag -}}:{{ . }}{{- end -}}{{- with .digest -}}@{{ . }}{{- end -}}
{{- end -}}
