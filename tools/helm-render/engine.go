package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

// Release is .Release (a map in Helm too).
func releaseValues(name, namespace string, upgrade bool) map[string]interface{} {
	return map[string]interface{}{
		"Name":      name,
		"Namespace": namespace,
		"IsInstall": !upgrade,
		"IsUpgrade": upgrade,
		"Revision":  1,
		"Service":   "Helm",
	}
}

// KubeVersion is .Capabilities.KubeVersion.
type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (k KubeVersion) String() string { return k.Version }

// GitVersion is the deprecated alias Helm still offers.
func (k KubeVersion) GitVersion() string { return k.Version }

// VersionSet is .Capabilities.APIVersions.
type VersionSet []string

// Has tells whether an "group/version" or "group/version/Kind" is available.
func (v VersionSet) Has(apiVersion string) bool {
	for _, known := range v {
		if known == apiVersion {
			return true
		}
	}
	return false
}

// Capabilities is .Capabilities.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

// defaultAPIVersions are the built-in group/versions of a current cluster (what `helm template`
// assumes without a cluster); --api-versions adds more.
var defaultAPIVersions = []string{
	"v1", "admissionregistration.k8s.io/v1", "apiextensions.k8s.io/v1", "apps/v1", "authentication.k8s.io/v1",
	"authorization.k8s.io/v1", "autoscaling/v1", "autoscaling/v2", "batch/v1", "certificates.k8s.io/v1",
	"coordination.k8s.io/v1", "discovery.k8s.io/v1", "events.k8s.io/v1", "networking.k8s.io/v1", "node.k8s.io/v1",
	"policy/v1", "rbac.authorization.k8s.io/v1", "scheduling.k8s.io/v1", "storage.k8s.io/v1",
}

const maxIncludeDepth = 1000

// Engine renders a chart's templates with Go text/template, sprig and Helm's own functions.
type Engine struct {
	chart    *Chart
	tmpl     *template.Template
	included map[string]int
}

func newEngine(chart *Chart) (*Engine, error) {
	e := &Engine{chart: chart, included: map[string]int{}}
	e.tmpl = template.New("gotpl").Option("missingkey=zero").Funcs(e.funcMap())
	// Partials first, as Helm sorts them, so every `define` exists before any template runs.
	for _, name := range e.templateNames() {
		if _, err := e.tmpl.New(e.qualified(name)).Parse(chart.Templates[name]); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *Engine) qualified(name string) string { return e.chart.Meta.Name + "/" + name }

func (e *Engine) templateNames() []string {
	names := make([]string, 0, len(e.chart.Templates))
	for name := range e.chart.Templates {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func (e *Engine) funcMap() template.FuncMap {
	funcs := sprig.TxtFuncMap()
	// Helm removes these: a chart must not read the renderer's environment.
	delete(funcs, "env")
	delete(funcs, "expandenv")
	helm := template.FuncMap{
		"toYaml":        toYAML,
		"mustToYaml":    mustToYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"mustToJson":    mustToJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"include":       e.include,
		"tpl":           e.tpl,
		"required":      required,
		// `helm template` has no cluster: lookup finds nothing (an empty map), as it does there.
		"lookup": func(apiVersion, resource, namespace, name string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
	}
	for name, fn := range helm {
		funcs[name] = fn
	}
	return funcs
}

func (e *Engine) include(name string, data interface{}) (string, error) {
	if e.included[name] > maxIncludeDepth {
		return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
	}
	e.included[name]++
	defer func() { e.included[name]-- }()
	var buf strings.Builder
	if err := e.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func (e *Engine) tpl(text string, data interface{}) (string, error) {
	clone, err := e.tmpl.Clone()
	if err != nil {
		return "", err
	}
	parsed, err := clone.New("tpl").Parse(text)
	if err != nil {
		return "", fmt.Errorf("cannot parse template %q: %w", text, err)
	}
	var buf strings.Builder
	if err := parsed.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("error during tpl function execution for %q: %w", text, err)
	}
	return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
}

// Rendered is the output of one template file.
type Rendered struct {
	Name    string // "<chart>/templates/x.yaml"
	Content string
}

// Render executes every template that is not a partial (_*) and returns them by name; NOTES.txt
// is rendered (so its errors show) and returned separately.
func (e *Engine) Render(top map[string]interface{}) ([]Rendered, string, error) {
	var out []Rendered
	notes := ""
	for _, name := range e.templateNames() {
		base := path.Base(name)
		if strings.HasPrefix(base, "_") {
			continue
		}
		qualified := e.qualified(name)
		vals := map[string]interface{}{}
		for k, v := range top {
			vals[k] = v
		}
		vals["Template"] = map[string]interface{}{"Name": qualified, "BasePath": e.chart.Meta.Name + "/templates"}
		var buf strings.Builder
		if err := e.tmpl.ExecuteTemplate(&buf, qualified, vals); err != nil {
			return nil, "", cleanupError(err)
		}
		content := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			notes = content
			continue
		}
		out = append(out, Rendered{Name: qualified, Content: content})
	}
	return out, notes, nil
}

// cleanupError shortens `required` and `fail` errors to Helm's "execution error at (file:line:col): msg".
func cleanupError(err error) error {
	msg := err.Error()
	for _, marker := range []string{"error calling required: ", "error calling fail: "} {
		if i := strings.Index(msg, marker); i >= 0 {
			location := ""
			if strings.HasPrefix(msg, "template: ") {
				rest := strings.TrimPrefix(msg, "template: ")
				if j := strings.Index(rest, ": "); j >= 0 {
					location = rest[:j]
				}
			}
			return fmt.Errorf("execution error at (%s): %s", location, msg[i+len(marker):])
		}
	}
	return err
}

func required(warning string, value interface{}) (interface{}, error) {
	if value == nil {
		return value, errors.New(warning)
	}
	if s, ok := value.(string); ok && s == "" {
		return value, errors.New(warning)
	}
	return value, nil
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func mustToYAML(v interface{}) (string, error) {
	data, err := yaml.Marshal(v)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(data), "\n"), nil
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func mustToJSON(v interface{}) (string, error) {
	data, err := json.Marshal(v)
	return string(data), err
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func base64Encode(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
