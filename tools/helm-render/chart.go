package main

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	semver "github.com/Masterminds/semver"
	"sigs.k8s.io/yaml"
)

// Metadata is Chart.yaml, with the field names Helm exposes as .Chart.
type Metadata struct {
	APIVersion   string            `json:"apiVersion"`
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	AppVersion   string            `json:"appVersion,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Description  string            `json:"description,omitempty"`
	Type         string            `json:"type,omitempty"`
	Home         string            `json:"home,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Maintainers  []interface{}     `json:"maintainers,omitempty"`
	Dependencies []interface{}     `json:"dependencies,omitempty"`
}

// Chart is what Helm's loader makes of a chart directory, for the parts this renderer supports.
type Chart struct {
	Meta *Metadata
	// Values from values.yaml.
	Values map[string]interface{}
	// Templates by path relative to the chart ("templates/x.yaml"), content as text.
	Templates map[string]string
	// CRDs by path relative to the chart ("crds/x.yaml"), verbatim.
	CRDs map[string]string
	// Every other file (Helm's .Files): not Chart.yaml, values.yaml, values.schema.json, templates/, charts/.
	Files Files
}

// loadChart reads a chart directory the way Helm's loader does (no .helmignore, no subcharts).
func loadChart(dir string) (*Chart, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a chart: %w", dir, err)
	}
	meta := &Metadata{}
	if err := yaml.UnmarshalStrict(raw, meta); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	if meta.APIVersion != "v2" {
		return nil, fmt.Errorf("Chart.yaml: apiVersion must be v2, not %q", meta.APIVersion)
	}
	if meta.Name == "" || meta.Version == "" {
		return nil, fmt.Errorf("Chart.yaml: name and version are required")
	}
	if _, err := semver.StrictNewVersion(meta.Version); err != nil {
		return nil, fmt.Errorf("Chart.yaml: version %q is not SemVer 2: %w", meta.Version, err)
	}
	if len(meta.Dependencies) > 0 {
		return nil, fmt.Errorf("Chart.yaml: dependencies (subcharts) are not supported by helm-render")
	}
	if _, err := os.Stat(filepath.Join(dir, "charts")); err == nil {
		return nil, fmt.Errorf("%s/charts: subcharts are not supported by helm-render", dir)
	}

	chart := &Chart{Meta: meta, Values: map[string]interface{}{}, Templates: map[string]string{}, CRDs: map[string]string{}, Files: Files{}}
	if data, err := os.ReadFile(filepath.Join(dir, "values.yaml")); err == nil {
		if chart.Values, err = parseValues(data); err != nil {
			return nil, fmt.Errorf("values.yaml: %w", err)
		}
	} else if !os.IsNotExist(err) {
		return nil, err
	}

	err = filepath.Walk(dir, func(file string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		switch {
		case rel == "Chart.yaml", rel == "values.yaml", rel == "values.schema.json", rel == "Chart.lock":
		case strings.HasPrefix(rel, "templates/"):
			chart.Templates[rel] = string(data)
		default:
			if strings.HasPrefix(rel, "crds/") {
				ext := path.Ext(rel)
				if ext == ".yaml" || ext == ".yml" || ext == ".json" {
					chart.CRDs[rel] = string(data)
				}
			}
			// Helm keeps crds/ in .Files too.
			chart.Files[rel] = data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return chart, nil
}

// checkKubeVersion fails like Helm when Chart.yaml's kubeVersion excludes the target version.
func checkKubeVersion(meta *Metadata, kube string) error {
	if meta.KubeVersion == "" {
		return nil
	}
	constraint, err := semver.NewConstraint(meta.KubeVersion)
	if err != nil {
		return fmt.Errorf("Chart.yaml: kubeVersion %q: %w", meta.KubeVersion, err)
	}
	version, err := semver.NewVersion(kube)
	if err != nil {
		return fmt.Errorf("--kube-version %q: %w", kube, err)
	}
	if !constraint.Check(version) {
		return fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", meta.KubeVersion, kube)
	}
	return nil
}

// Files is Helm's .Files: the chart's non-template files by relative path.
type Files map[string][]byte

// GetBytes returns a file's content, or nil.
func (f Files) GetBytes(name string) []byte { return f[name] }

// Get returns a file's content as a string, or "".
func (f Files) Get(name string) string { return string(f[name]) }

// Glob returns the files whose path matches a path.Match pattern ("**" is not supported).
func (f Files) Glob(pattern string) Files {
	matched := Files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			matched[name] = data
		}
	}
	return matched
}

// Lines splits a file into lines.
func (f Files) Lines(name string) []string {
	data, ok := f[name]
	if !ok {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// AsConfig renders the files as a ConfigMap data map (base name → content), as YAML.
func (f Files) AsConfig() string {
	return f.asMap(func(b []byte) string { return string(b) })
}

// AsSecrets renders the files as a Secret data map (base name → base64 content), as YAML.
func (f Files) AsSecrets() string {
	return f.asMap(func(b []byte) string { return base64Encode(b) })
}

func (f Files) asMap(encode func([]byte) string) string {
	m := map[string]string{}
	names := make([]string, 0, len(f))
	for name := range f {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m[path.Base(name)] = encode(f[name])
	}
	return toYAML(m)
}
