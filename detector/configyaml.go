package detector

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Reading the detector's YAML file happens in three steps over the parsed document, so that
// every message can name the key and the line it is about:
//  1. unknown keys are found by walking the document against the configuration's types;
//  2. ${env:NAME} references in values are replaced from the environment;
//  3. the document is decoded.

// decodeStrict decodes the YAML document in data into out (a pointer to a struct) after
// checking its keys and expanding its environment references.
func decodeStrict(data []byte, out any, getenv func(string) (string, bool)) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return errors.New("the file is empty")
	}
	var errs []error
	checkKeys(doc.Content[0], reflect.TypeOf(out).Elem(), "", &errs)
	expandEnv(doc.Content[0], "", getenv, &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return doc.Content[0].Decode(out)
}

// keyPath names a key below parent, as the messages quote it ('alerting.webhooks[0].url').
func keyPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// checkKeys reports every mapping key that the type t has no field for. Types with their own
// YAML decoding (a URL, a duration, an Alertmanager given as a string or a mapping) are walked
// by their fields when the value is a mapping, and not at all when it is a scalar.
func checkKeys(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			return // a type error, reported when decoding
		}
		for i, item := range n.Content {
			checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case yaml.MappingNode:
		switch t.Kind() {
		case reflect.Map:
			for i := 0; i+1 < len(n.Content); i += 2 {
				checkKeys(n.Content[i+1], t.Elem(), keyPath(path, n.Content[i].Value), errs)
			}
		case reflect.Struct:
			fields := map[string]reflect.Type{}
			var inlineMap reflect.Type
			yamlFields(t, fields, &inlineMap)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == "<<" { // a merge key: its mapping holds keys of this one
					checkKeys(v, t, path, errs)
					continue
				}
				ft, ok := fields[k.Value]
				switch {
				case ok:
					checkKeys(v, ft, keyPath(path, k.Value), errs)
				case inlineMap != nil:
					checkKeys(v, inlineMap.Elem(), keyPath(path, k.Value), errs)
				default:
					*errs = append(*errs, fmt.Errorf("line %d: '%s' is not a known key", k.Line, keyPath(path, k.Value)))
				}
			}
		}
	}
}

// yamlFields collects the YAML keys of struct type t with their types, following inline
// structs; an inline map takes every other key.
func yamlFields(t reflect.Type, fields map[string]reflect.Type, inlineMap *reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if strings.Contains(","+opts+",", ",inline,") {
			switch ft.Kind() {
			case reflect.Struct:
				yamlFields(ft, fields, inlineMap)
			case reflect.Map:
				*inlineMap = ft
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
}

// envRef is one ${env:NAME} or ${env:NAME:-default} reference; $$ stands for a literal $.
var envRef = regexp.MustCompile(`\$\$|\$\{env:([^}]*)\}`)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expandEnv replaces the environment references in every scalar value below n (keys are
// left as written). A value that is one reference alone takes the type its text has (a
// number for `rate: ${env:RATE}`, quoted or not); any other value stays a string, and so does
// an empty or null-looking value, so that a secret reads as written. A variable that is not set
// and has no default is an error naming the key.
func expandEnv(n *yaml.Node, path string, getenv func(string) (string, bool), errs *[]error) {
	switch n.Kind {
	case yaml.SequenceNode:
		for i, item := range n.Content {
			expandEnv(item, fmt.Sprintf("%s[%d]", path, i), getenv, errs)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandEnv(n.Content[i+1], keyPath(path, n.Content[i].Value), getenv, errs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		whole := envRef.FindStringIndex(n.Value)
		alone := whole != nil && whole[0] == 0 && whole[1] == len(n.Value) && n.Value != "$$"
		failed := false
		out := envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			if ref == "$$" {
				return "$"
			}
			spec := ref[len("${env:") : len(ref)-1]
			name, def, hasDef := strings.Cut(spec, ":-")
			if !envName.MatchString(name) {
				*errs = append(*errs, fmt.Errorf("line %d: '%s': %q is not an environment variable name", n.Line, path, name))
				failed = true
				return ref
			}
			v, ok := getenv(name)
			if !ok {
				if !hasDef {
					*errs = append(*errs, fmt.Errorf("line %d: '%s': environment variable %s is not set", n.Line, path, name))
					failed = true
					return ref
				}
				v = def
			}
			return v
		})
		if failed || out == n.Value {
			return
		}
		n.Value = out
		if alone && !isNullText(out) {
			// Resolved from the value's text, as if it had been written there unquoted (a
			// reference in a flow mapping {...} must be quoted to parse).
			n.Tag, n.Style = "", 0
		} else {
			n.Tag = "!!str"
		}
	}
}

func isNullText(s string) bool {
	switch s {
	case "", "~", "null", "Null", "NULL":
		return true
	}
	return false
}
