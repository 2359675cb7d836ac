package main

import (
	"fmt"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// parseValues reads a YAML values document the way Helm does (sigs.k8s.io/yaml: YAML → JSON, so
// numbers become float64).
func parseValues(data []byte) (map[string]interface{}, error) {
	values := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &values); err != nil {
		return nil, err
	}
	if values == nil {
		values = map[string]interface{}{}
	}
	return values, nil
}

// mergeMaps deep-merges src into dst (src wins), as Helm merges -f files and --set values.
func mergeMaps(dst, src map[string]interface{}) map[string]interface{} {
	for key, value := range src {
		if srcMap, ok := value.(map[string]interface{}); ok {
			if dstMap, ok := dst[key].(map[string]interface{}); ok {
				dst[key] = mergeMaps(dstMap, srcMap)
				continue
			}
		}
		dst[key] = value
	}
	return dst
}

// coalesce lays user values over the chart's defaults as Helm does: maps merge deeply, a user
// null deletes the default, anything else replaces it.
func coalesce(defaults, user map[string]interface{}) map[string]interface{} {
	out := deepCopyMap(defaults)
	for key, value := range user {
		if value == nil {
			delete(out, key)
			continue
		}
		if userMap, ok := value.(map[string]interface{}); ok {
			if defaultMap, ok := out[key].(map[string]interface{}); ok {
				out[key] = coalesce(defaultMap, userMap)
				continue
			}
		}
		out[key] = deepCopy(value)
	}
	return out
}

func deepCopy(value interface{}) interface{} {
	switch v := value.(type) {
	case map[string]interface{}:
		return deepCopyMap(v)
	case []interface{}:
		out := make([]interface{}, len(v))
		for i, item := range v {
			out[i] = deepCopy(item)
		}
		return out
	default:
		return v
	}
}

func deepCopyMap(m map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(m))
	for key, value := range m {
		out[key] = deepCopy(value)
	}
	return out
}

// parseSet applies one --set (or --set-string when asString) argument: comma-separated
// `a.b.c=value` pairs, `\` escapes `.`, `,`, `=`, `{` and `}`, and `{x,y}` is a list. Typed like Helm's
// strvals: true/false, null (deletes the key), integers without a leading zero; the rest are strings.
// List indexes (`a[0]=x`) are not supported.
func parseSet(expr string, asString bool, into map[string]interface{}) error {
	for _, pair := range splitUnescaped(expr, ',', true) {
		if pair == "" {
			continue
		}
		kv := splitUnescaped(pair, '=', false)
		if len(kv) < 2 {
			return fmt.Errorf("--set %q: key %q has no value", expr, unescape(pair))
		}
		key, raw := kv[0], strings.Join(kv[1:], "=")
		if strings.ContainsAny(strings.ReplaceAll(key, `\[`, ""), "[") {
			return fmt.Errorf("--set %q: list indexes are not supported by helm-render", expr)
		}
		path := splitUnescaped(key, '.', false)
		var value interface{}
		if !asString && strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
			items := []interface{}{}
			for _, item := range splitUnescaped(raw[1:len(raw)-1], ',', false) {
				items = append(items, typedValue(unescape(item), false))
			}
			value = items
		} else {
			value = typedValue(unescape(raw), asString)
		}
		node := into
		for i, segment := range path {
			name := unescape(segment)
			if name == "" {
				return fmt.Errorf("--set %q: empty key segment", expr)
			}
			if i == len(path)-1 {
				node[name] = value
				break
			}
			next, ok := node[name].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				node[name] = next
			}
			node = next
		}
	}
	return nil
}

// splitUnescaped splits on sep where it is not escaped with `\` (and, with braces, not inside {}).
// Escapes are kept, so segments can be split again before unescape.
func splitUnescaped(s string, sep rune, braces bool) []string {
	var parts []string
	var current strings.Builder
	depth := 0
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			current.WriteRune(r)
			escaped = false
			continue
		case r == '\\':
			current.WriteRune(r)
			escaped = true
			continue
		case braces && r == '{':
			depth++
		case braces && r == '}' && depth > 0:
			depth--
		case r == sep && depth == 0:
			parts = append(parts, current.String())
			current.Reset()
			continue
		}
		current.WriteRune(r)
	}
	return append(parts, current.String())
}

func unescape(s string) string {
	var out strings.Builder
	escaped := false
	for _, r := range s {
		if !escaped && r == '\\' {
			escaped = true
			continue
		}
		escaped = false
		out.WriteRune(r)
	}
	return out.String()
}

func typedValue(s string, asString bool) interface{} {
	if asString {
		return s
	}
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	case "0":
		return int64(0)
	}
	if s != "" && s[0] != '0' {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return s
}
