// helm-render renders a Helm chart the way `helm template` does, for tests on machines without
// helm. It is Go text/template with sprig (the same engine Helm uses) plus Helm's own functions:
// include, tpl, required, toYaml/fromYaml(Array), toJson/fromJson(Array), lookup (always empty,
// as in `helm template`), and .Files Get/GetBytes/Glob/Lines/AsConfig/AsSecrets.
//
// Not supported: subcharts and dependencies, .helmignore, values.schema.json validation, hooks as
// a separate phase (hook objects are printed like any other), --set list indexes (a[0]=x),
// --set-file/--set-json, `**` in .Files.Glob, Capabilities from a live cluster, post-renderers.
//
// usage: helm-render [flags] [NAME] CHART_DIR
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

type options struct {
	name        string
	chartDir    string
	namespace   string
	valueFiles  []string
	kubeVersion string
	apiVersions []string
	includeCRDs bool
	upgrade     bool
	showOnly    []string
	notes       bool
	setOrder    []setArg
}

type setArg struct {
	expr     string
	asString bool
}

const usage = `usage: helm-render [flags] [NAME] CHART_DIR

Renders CHART_DIR's templates like ` + "`helm template`" + ` and prints them as a YAML stream.

  -f, --values FILE        values file laid over values.yaml (repeatable, later wins)
      --set a.b=c          set a value (repeatable; typed: true/false/null/integers)
      --set-string a.b=c   set a string value (repeatable)
  -n, --namespace NS       .Release.Namespace (default "default")
      --kube-version V     .Capabilities.KubeVersion (default "v1.30.0")
      --api-versions G/V   add to .Capabilities.APIVersions (repeatable)
      --include-crds       print the files under crds/ first
      --is-upgrade         .Release.IsUpgrade true, IsInstall false
  -s, --show-only PATH     only the template PATH (e.g. templates/service.yaml; repeatable)
      --notes              print the rendered NOTES.txt instead of the manifests
NAME defaults to "release-name", like helm template.
`

func parseArgs(args []string) (*options, error) {
	o := &options{namespace: "default", kubeVersion: "v1.30.0"}
	var positional []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, hasValue := arg, "", false
		if strings.HasPrefix(arg, "--") {
			if eq := strings.Index(arg, "="); eq >= 0 {
				name, value, hasValue = arg[:eq], arg[eq+1:], true
			}
		}
		next := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag %s needs a value", name)
			}
			i++
			return args[i], nil
		}
		var err error
		var v string
		switch name {
		case "-h", "--help":
			fmt.Print(usage)
			os.Exit(0)
		case "-f", "--values":
			if v, err = next(); err == nil {
				o.valueFiles = append(o.valueFiles, v)
			}
		case "--set":
			if v, err = next(); err == nil {
				o.setOrder = append(o.setOrder, setArg{v, false})
			}
		case "--set-string":
			if v, err = next(); err == nil {
				o.setOrder = append(o.setOrder, setArg{v, true})
			}
		case "-n", "--namespace":
			v, err = next()
			o.namespace = v
		case "--kube-version":
			v, err = next()
			o.kubeVersion = v
		case "--api-versions":
			if v, err = next(); err == nil {
				o.apiVersions = append(o.apiVersions, v)
			}
		case "--include-crds":
			o.includeCRDs = true
		case "--is-upgrade":
			o.upgrade = true
		case "-s", "--show-only":
			if v, err = next(); err == nil {
				o.showOnly = append(o.showOnly, v)
			}
		case "--notes":
			o.notes = true
		default:
			if strings.HasPrefix(arg, "-") {
				return nil, fmt.Errorf("unknown flag %s", arg)
			}
			positional = append(positional, arg)
		}
		if err != nil {
			return nil, err
		}
	}
	switch len(positional) {
	case 1:
		o.name, o.chartDir = "release-name", positional[0]
	case 2:
		o.name, o.chartDir = positional[0], positional[1]
	default:
		return nil, fmt.Errorf("expected [NAME] CHART_DIR, got %d arguments", len(positional))
	}
	return o, nil
}

// installOrder is Helm's InstallOrder: `helm template` prints manifests sorted by it.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
	"ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
	"Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
	"StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
}

// Helm's releaseutil.SplitManifests separator.
var separator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

type manifest struct {
	source  string
	content string
	kind    string
}

func splitManifests(r Rendered) ([]manifest, error) {
	var out []manifest
	for _, doc := range separator.Split(strings.TrimSpace(r.Content), -1) {
		doc = strings.TrimSpace(doc)
		if doc == "" {
			continue
		}
		var head struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("YAML parse error on %s: %w", r.Name, err)
		}
		out = append(out, manifest{source: r.Name, content: doc, kind: head.Kind})
	}
	return out, nil
}

func sortByInstallOrder(manifests []manifest) {
	rank := map[string]int{}
	for i, kind := range installOrder {
		rank[kind] = i
	}
	sort.SliceStable(manifests, func(i, j int) bool {
		a, aok := rank[manifests[i].kind]
		b, bok := rank[manifests[j].kind]
		switch {
		case aok && bok:
			return a < b
		case aok != bok:
			return aok
		default:
			return manifests[i].kind < manifests[j].kind
		}
	})
}

func run(o *options, stdout io.Writer) error {
	chart, err := loadChart(o.chartDir)
	if err != nil {
		return err
	}
	kube := o.kubeVersion
	if !strings.HasPrefix(kube, "v") {
		kube = "v" + kube
	}
	parts := strings.SplitN(strings.TrimPrefix(kube, "v"), ".", 3)
	if len(parts) < 2 {
		return fmt.Errorf("--kube-version %q: want MAJOR.MINOR[.PATCH]", o.kubeVersion)
	}
	if err := checkKubeVersion(chart.Meta, kube); err != nil {
		return err
	}

	user := map[string]interface{}{}
	for _, file := range o.valueFiles {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		values, err := parseValues(data)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		mergeMaps(user, values)
	}
	for _, set := range o.setOrder {
		if err := parseSet(set.expr, set.asString, user); err != nil {
			return err
		}
	}
	values := coalesce(chart.Values, user)

	engine, err := newEngine(chart)
	if err != nil {
		return err
	}
	top := map[string]interface{}{
		"Values":  values,
		"Release": releaseValues(o.name, o.namespace, o.upgrade),
		"Chart":   chart.Meta,
		"Capabilities": &Capabilities{
			KubeVersion: KubeVersion{Version: kube, Major: parts[0], Minor: parts[1]},
			APIVersions: append(append(VersionSet{}, defaultAPIVersions...), o.apiVersions...),
			HelmVersion: map[string]string{"Version": "v3-compatible (helm-render)"},
		},
		"Files": chart.Files,
	}
	rendered, notes, err := engine.Render(top)
	if err != nil {
		return err
	}
	if o.notes {
		_, err := fmt.Fprint(stdout, notes)
		return err
	}

	var manifests []manifest
	for _, r := range rendered {
		docs, err := splitManifests(r)
		if err != nil {
			return err
		}
		manifests = append(manifests, docs...)
	}
	sortByInstallOrder(manifests)

	if len(o.showOnly) > 0 {
		var kept []manifest
		for _, want := range o.showOnly {
			found := false
			for _, m := range manifests {
				if m.source == chart.Meta.Name+"/"+filepath.ToSlash(want) {
					kept = append(kept, m)
					found = true
				}
			}
			if !found {
				return fmt.Errorf("could not find template %s in chart", want)
			}
		}
		manifests = kept
	}

	if o.includeCRDs && len(o.showOnly) == 0 {
		names := make([]string, 0, len(chart.CRDs))
		for name := range chart.CRDs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if _, err := fmt.Fprintf(stdout, "---\n# Source: %s/%s\n%s\n", chart.Meta.Name, name, strings.TrimRight(chart.CRDs[name], "\n")); err != nil {
				return err
			}
		}
	}
	for _, m := range manifests {
		if _, err := fmt.Fprintf(stdout, "---\n# Source: %s\n%s\n", m.source, m.content); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	o, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n\n%s", err, usage)
		os.Exit(2)
	}
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}
