{{/*
What lakeport's pods share: security contexts, resources, volumes, the wait for Postgres,
config checksums and scheduling keys (the paths and the uid are in ../_helpers.tpl).
*/}}

{{/*
A pod's securityContext: non-root as uid (group gid, else uid; fsGroup the same, so
mounted volumes are writable by it) with the runtime's default seccomp profile.
Usage: include "lakeport.podSecurityContext" (dict "uid" 10000 "gid" 10001)
*/}}
{{- define "lakeport.podSecurityContext" -}}
{{- $gid := .gid | default .uid -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ $gid }}
fsGroup: {{ $gid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* A container's securityContext: no privilege escalation, a read-only root filesystem
(writable paths are emptyDirs) and no Linux capabilities. */}}
{{- define "lakeport.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/*
Container resources from a platform.yaml `resources:` block: quantities as strings, unset
ones left out, an empty requests/limits left out. Returns YAML (possibly `{}`).
*/}}
{{- define "lakeport.resources" -}}
{{- $r := dict -}}
{{- range $kind := list "requests" "limits" -}}
{{- $list := dict -}}
{{- range $name, $q := (index $ $kind | default dict) -}}
{{- if not (kindIs "invalid" $q) -}}{{- $_ := set $list $name (toString $q) -}}{{- end -}}
{{- end -}}
{{- if $list -}}{{- $_ := set $r $kind $list -}}{{- end -}}
{{- end -}}
{{- toYaml $r -}}
{{- end -}}

{{/* An init container that waits until Postgres accepts TCP connections, so Dagster
processes do not crash-loop on first install. Returns a one-item container list. */}}
{{- define "lakeport.waitForPostgres" -}}
{{- $p := fromYaml (include "lakeport.effectivePlatform" .) -}}
- name: wait-for-postgres
  image: {{ include "lakeport.image" .Values.images.lakeport | quote }}
  imagePullPolicy: {{ .Values.images.lakeport.pullPolicy }}
  command:
    - python
    - -c
    - |
      import socket, sys, time
      host, port = sys.argv[1], int(sys.argv[2])
      for attempt in range(600):
          try:
              socket.create_connection((host, port), timeout=3).close()
              sys.exit(0)
          except OSError as exc:
              print(f"waiting for postgres at {host}:{port}: {exc}", flush=True)
              time.sleep(2)
      sys.exit(1)
    - {{ $p.postgres.host | quote }}
    - {{ $p.postgres.port | int | quote }}
  securityContext:
    {{- include "lakeport.containerSecurityContext" . | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 32Mi}
    limits: {cpu: 100m, memory: 64Mi}
{{- end -}}

{{/* Volumes every Dagster pod mounts: instance, workspace, platform file, writable dirs. */}}
{{- define "lakeport.dagsterVolumes" -}}
- name: dagster-instance
  configMap:
    name: {{ include "lakeport.instanceConfigMap" . }}
- name: dagster-workspace
  configMap:
    name: {{ include "lakeport.workspaceConfigMap" . }}
- name: lakeport-platform
  configMap:
    name: {{ include "lakeport.platformConfigMap" . }}
- name: dagster-home
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end -}}

{{/* Where those volumes are mounted in a Dagster container; dagster.yaml goes into the
writable DAGSTER_HOME by subPath. */}}
{{- define "lakeport.dagsterVolumeMounts" -}}
- name: dagster-home
  mountPath: {{ include "lakeport.dagsterHome" . }}
- name: dagster-instance
  mountPath: {{ include "lakeport.dagsterHome" . }}/dagster.yaml
  subPath: dagster.yaml
  readOnly: true
- name: dagster-workspace
  mountPath: /opt/dagster/workspace
  readOnly: true
- name: lakeport-platform
  mountPath: {{ include "lakeport.platformDir" . }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Pod template annotations with the hash of each config a Dagster pod reads: a config
change rolls the pods that read it (Kubernetes does not restart pods when a ConfigMap
they mount changes). */}}
{{- define "lakeport.checksums" -}}
checksum/instance: {{ include "lakeport.dagsterYaml" . | sha256sum }}
checksum/platform: {{ include "lakeport.effectivePlatform" . | sha256sum }}
checksum/workspace: {{ include (print .Template.BasePath "/dagster/workspace-configmap.yaml") . | sha256sum }}
{{- end -}}

{{/*
A platform pod's scheduling keys (a `scheduling:` block of platform.yaml), camelCase as
in any pod spec; unset keys are left out. Usage: include "lakeport.podScheduling" $w.scheduling
*/}}
{{- define "lakeport.podScheduling" -}}
{{- $s := . | default dict -}}
{{- with $s.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $s.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $s.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $s.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $s.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . | quote }}
  {{- end }}
{{- end }}
{{- end -}}
