{{/*
Names. Cluster-scoped objects (ClusterRoles, the webhook configuration, the default policy) are
named from the full name, so one release per cluster.
*/}}
{{- define "minerguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "minerguard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The namespace everything namespaced goes into. */}}
{{- define "minerguard.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{/* A component's name: <fullname>-<component>. Call with (dict "root" $ "component" "webhook"). */}}
{{- define "minerguard.componentName" -}}
{{- printf "%s-%s" (include "minerguard.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "minerguard.webhook.serviceName" -}}
{{- include "minerguard.componentName" (dict "root" . "component" "webhook") }}
{{- end }}

{{- define "minerguard.webhook.tlsSecretName" -}}
{{- include "minerguard.componentName" (dict "root" . "component" "webhook-tls") }}
{{- end }}

{{- define "minerguard.caSecretName" -}}
{{- include "minerguard.componentName" (dict "root" . "component" "ca") }}
{{- end }}

{{- define "minerguard.peeringName" -}}
{{- default (include "minerguard.fullname" .) .Values.operator.peering.name }}
{{- end }}

{{/* Namespaces no webhook rule and no default policy ever covers. */}}
{{- define "minerguard.excludedNamespaces" -}}
{{- $ns := list "kube-system" (include "minerguard.namespace" .) }}
{{- range .Values.excludedNamespaces }}{{ $ns = append $ns . }}{{ end }}
{{- toJson (uniq $ns) }}
{{- end }}

{{- /* webhook.podTemplateKinds as the webhook reads them (MINERGUARD_WEBHOOK_POD_TEMPLATE_KINDS). */}}
{{- define "minerguard.webhook.podTemplateKinds" -}}
{{- $kinds := list }}
{{- range .Values.webhook.podTemplateKinds }}
{{- $kinds = append $kinds (dict "group" .group "version" (.version | default "*") "kind" .kind "resource" .resource "paths" (.paths | default list)) }}
{{- end }}
{{- toJson $kinds }}
{{- end }}

{{- /* Webhook rules for workload CRDs: the built-in ones (minerguard.workloads.CRD_KINDS; a test keeps them in step) and webhook.podTemplateKinds. */}}
{{- define "minerguard.webhook.crdRules" -}}
{{- $ops := list "CREATE" "UPDATE" }}
{{- $rules := list }}
{{- if .Values.webhook.rules.workloadCRDs }}
{{- $rules = append $rules (dict "apiGroups" (list "argoproj.io") "apiVersions" (list "*") "operations" $ops "resources" (list "workflows" "cronworkflows" "workflowtemplates" "clusterworkflowtemplates") "scope" "*") }}
{{- $rules = append $rules (dict "apiGroups" (list "tekton.dev") "apiVersions" (list "*") "operations" $ops "resources" (list "tasks" "clustertasks" "taskruns" "pipelines" "pipelineruns") "scope" "*") }}
{{- $rules = append $rules (dict "apiGroups" (list "kubeflow.org") "apiVersions" (list "*") "operations" $ops "resources" (list "pytorchjobs" "tfjobs" "mpijobs" "xgboostjobs" "paddlejobs" "jaxjobs" "mxjobs" "notebooks") "scope" "*") }}
{{- $rules = append $rules (dict "apiGroups" (list "trainer.kubeflow.org") "apiVersions" (list "*") "operations" $ops "resources" (list "trainjobs") "scope" "*") }}
{{- end }}
{{- range .Values.webhook.podTemplateKinds }}
{{- $rules = append $rules (dict "apiGroups" (list .group) "apiVersions" (list (.version | default "*")) "operations" $ops "resources" (list .resource) "scope" "*") }}
{{- end }}
{{- toJson $rules }}
{{- end }}

{{- /* The namespaces the system namespaces' webhook entry covers: the excluded ones, never the release namespace. */}}
{{- define "minerguard.systemNamespaces" -}}
{{- $release := include "minerguard.namespace" . }}
{{- $ns := list }}
{{- range (include "minerguard.excludedNamespaces" . | fromJsonArray) }}{{ if ne . $release }}{{ $ns = append $ns . }}{{ end }}{{ end }}
{{- toJson $ns }}
{{- end }}

{{/* Labels. */}}
{{- define "minerguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "minerguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: minerguard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component. Call with (dict "root" $ "component" "agent"). */}}
{{- define "minerguard.componentLabels" -}}
{{ include "minerguard.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one component. Call with (dict "root" $ "component" "agent"). */}}
{{- define "minerguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "minerguard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The one image every component runs. */}}
{{- define "minerguard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Pod anti-affinity spreading one component's replicas over nodes.
Call with (dict "root" $ "component" "webhook" "mode" "soft").
*/}}
{{- define "minerguard.podAntiAffinity" -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "minerguard.selectorLabels" . | fromYaml)) }}
{{- if eq .mode "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - {{ toYaml $term | nindent 6 | trim }}
{{- else if eq .mode "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        {{- toYaml $term | nindent 8 }}
{{- end }}
{{- end }}

{{/* Security context of the non-root containers (webhook, operator, hooks, tests). */}}
{{- define "minerguard.restrictedContainerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The agent's capabilities: the least set for the enabled features.
  SYS_PTRACE       read /proc/PID/{exe,environ,fd,root} of processes with other credentials (always)
  DAC_READ_SEARCH  read files a process names (-c config.json) under /proc/PID/root (always)
  NET_ADMIN        join the proc connector's multicast group (features.procConnector)
  KILL             SIGKILL processes of other users through a pidfd (features.killProcess)
  SYS_ADMIN        fanotify_init with FAN_CLASS_CONTENT and FAN_OPEN_EXEC_PERM marks (features.fanotify)
*/}}
{{- define "minerguard.agent.capabilities" -}}
{{- $caps := list "SYS_PTRACE" "DAC_READ_SEARCH" }}
{{- if .Values.agent.features.procConnector }}{{ $caps = append $caps "NET_ADMIN" }}{{ end }}
{{- if .Values.agent.features.killProcess }}{{ $caps = append $caps "KILL" }}{{ end }}
{{- if .Values.agent.features.fanotify }}{{ $caps = append $caps "SYS_ADMIN" }}{{ end }}
{{- if .Values.agent.features.network }}{{ $caps = concat $caps (list "NET_ADMIN" "NET_RAW") }}{{ end }}
{{- range .Values.agent.extraCapabilities }}{{ $caps = append $caps . }}{{ end }}
{{- toJson (uniq $caps) }}
{{- end }}

{{/*
Metadata annotations for a custom resource whose CRD this chart itself installs.
Helm maps every release manifest to an API before applying any, so on a first install (the CRD not
yet served) the object is made a post-install hook, created once the CRDs exist. It carries Helm's
ownership annotations, so the next upgrade, which sees the API and renders it as a plain release
object, adopts it and from then on patches it in place (no delete-and-recreate gap) and deletes it
on uninstall.
Call with (dict "root" $ "api" "minerguard.io/v1alpha1/MinerPolicy" "weight" "0").
*/}}
{{- define "minerguard.customResourceAnnotations" -}}
{{- if not (.root.Capabilities.APIVersions.Has .api) }}
helm.sh/hook: post-install,post-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation
meta.helm.sh/release-name: {{ .root.Release.Name }}
meta.helm.sh/release-namespace: {{ .root.Release.Namespace }}
{{- end }}
{{- end }}

{{/*
The CEL that says the requester is trusted by the ValidatingAdmissionPolicies: a user in
admissionPolicy.trustedUsers or a member of one of admissionPolicy.trustedGroups.
*/}}
{{- define "minerguard.admissionPolicy.trusted" -}}
{{- $p := .Values.admissionPolicy -}}
{{- printf "request.userInfo.username in %s || (has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in %s))" (toJson ($p.trustedUsers | default list)) (toJson ($p.trustedGroups | default list)) }}
{{- end }}

{{/*
"true" when the policy guarding the minerguard.io/isolated pod label is rendered: the operator
runs, admission policies are on (Kubernetes >= 1.30) and admissionPolicy.guardIsolationLabel.
*/}}
{{- define "minerguard.isolationLabelPolicy" -}}
{{- $p := .Values.admissionPolicy -}}
{{- and .Values.operator.enabled $p.enabled $p.guardIsolationLabel (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version) | toString }}
{{- end }}

{{/*
"true" when the API server refuses every change of the minerguard.io/isolated label but the
operator's: the policy is rendered and its binding denies (Warn/Audit alone only report). The
operator's MINERGUARD_OPERATOR_ISOLATION_LABEL_GUARDED; without it Isolate is "not guaranteed".
*/}}
{{- define "minerguard.isolationLabelGuarded" -}}
{{- and (eq (include "minerguard.isolationLabelPolicy" .) "true") (has "Deny" .Values.admissionPolicy.validationActions) | toString }}
{{- end }}

{{/*
"true" when the policy guarding the minerguard.io/created-by stamp is rendered
(webhook/created-by-policy.yaml): the stamping webhook is on, admission policies are on and the
cluster serves them (Kubernetes >= 1.30). The template and the operator's setting both read it.
*/}}
{{- define "minerguard.createdByPolicy" -}}
{{- $p := .Values.admissionPolicy -}}
{{- and .Values.webhook.stampCreator.enabled $p.enabled (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version) | toString }}
{{- end }}

{{/*
"true" when a created-by stamp can only be the webhook's: the guard is rendered and its binding
denies (Warn/Audit alone only report), and the stamping webhook fails closed (with Ignore, a
CREATE during an outage keeps whatever stamp its creator wrote). The operator's
MINERGUARD_OPERATOR_CREATOR_STAMPS_TRUSTED; without it a stamp is reported as a claim.
*/}}
{{- define "minerguard.creatorStampsTrusted" -}}
{{- and (eq (include "minerguard.createdByPolicy" .) "true") (has "Deny" .Values.admissionPolicy.validationActions) (eq .Values.webhook.stampCreator.failurePolicy "Fail") | toString }}
{{- end }}

{{/*
"true" when the policy letting only the webhook write exec-session Events is rendered
(webhook/exec-session-policy.yaml): sessions are recorded, admission policies are on and the
cluster serves them (Kubernetes >= 1.30). The template and the operator's setting both read it.
*/}}
{{- define "minerguard.execSessionPolicy" -}}
{{- $p := .Values.admissionPolicy -}}
{{- and .Values.webhook.execSessions.enabled $p.enabled (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version) | toString }}
{{- end }}

{{/*
"true" when nobody but the webhook can write an exec-session Event: the policy is rendered and its
binding denies. The operator's MINERGUARD_OPERATOR_EXEC_SESSIONS_GUARDED; without it a session
correlated with a miner is Likely, never Certain.
*/}}
{{- define "minerguard.execSessionsGuarded" -}}
{{- and (eq (include "minerguard.execSessionPolicy" .) "true") (has "Deny" .Values.admissionPolicy.validationActions) | toString }}
{{- end }}
