// Package jsonschema checks a golden prompt's answer against the small
// subset of JSON Schema that an SLMModel's expectJSONSchema may use: type
// (one of object, array, string, number, integer, boolean, null, or a list
// of them), required, properties, items and enum. Compile refuses any other
// keyword, so a schema never looks stricter than what is checked.
//
// What it owns: reading such a schema and judging one JSON value with it.
// What it may not touch: the answer's text in anything it reports: errors
// name a place by JSON path (built from the schema's own property names and
// array indices) and a kind, never a value of the answer.
package jsonschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
)

// maxDepth bounds how deeply schemas nest, so that a schema cannot make
// Compile or Validate recurse without bound.
const maxDepth = 32

// types are the values of "type".
var types = []string{"object", "array", "string", "number", "integer", "boolean", "null"}

// keywords are the keywords Compile accepts.
var keywords = []string{"type", "required", "properties", "items", "enum"}

// Schema is a compiled schema.
type Schema struct {
	types      []string
	required   []string
	properties map[string]*Schema
	items      *Schema
	enum       []any
	hasEnum    bool
}

// Compile reads a schema. Its errors say where in the schema the problem is
// and what to write instead.
func Compile(raw []byte) (*Schema, error) {
	v, err := decode(raw)
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	return compile(v, "$", 0)
}

func compile(v any, at string, depth int) (*Schema, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("at %s: schemas nest more than %d deep", at, maxDepth)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("at %s: a schema is a JSON object, not %s", at, kind(v))
	}
	s := &Schema{}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		val := obj[k]
		switch k {
		case "type":
			ts, err := compileType(val, at)
			if err != nil {
				return nil, err
			}
			s.types = ts
		case "required":
			list, ok := val.([]any)
			if !ok {
				return nil, fmt.Errorf("at %s: required is a list of property names, not %s", at, kind(val))
			}
			for _, n := range list {
				name, ok := n.(string)
				if !ok {
					return nil, fmt.Errorf("at %s: required lists property names (strings), not %s", at, kind(n))
				}
				s.required = append(s.required, name)
			}
		case "properties":
			props, ok := val.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("at %s: properties is an object of schemas, not %s", at, kind(val))
			}
			s.properties = map[string]*Schema{}
			for name, ps := range props {
				c, err := compile(ps, at+"."+name, depth+1)
				if err != nil {
					return nil, err
				}
				s.properties[name] = c
			}
		case "items":
			c, err := compile(val, at+"[]", depth+1)
			if err != nil {
				return nil, err
			}
			s.items = c
		case "enum":
			list, ok := val.([]any)
			if !ok || len(list) == 0 {
				return nil, fmt.Errorf("at %s: enum is a non-empty list of the allowed values", at)
			}
			s.enum, s.hasEnum = list, true
		default:
			return nil, fmt.Errorf("at %s: keyword %q is not supported; the self-test checks only %s: remove it",
				at, k, strings.Join(keywords, ", "))
		}
	}
	return s, nil
}

func compileType(v any, at string) ([]string, error) {
	var list []any
	switch t := v.(type) {
	case string:
		list = []any{t}
	case []any:
		if len(t) == 0 {
			return nil, fmt.Errorf("at %s: type is an empty list; name at least one of %s", at, strings.Join(types, ", "))
		}
		list = t
	default:
		return nil, fmt.Errorf("at %s: type is a name or a list of names (%s), not %s", at, strings.Join(types, ", "), kind(v))
	}
	var out []string
	for _, e := range list {
		name, ok := e.(string)
		if !ok || !slices.Contains(types, name) {
			return nil, fmt.Errorf("at %s: type %v is not one of %s", at, e, strings.Join(types, ", "))
		}
		out = append(out, name)
	}
	return out, nil
}

// ValidateText reads text as one JSON value (whitespace around it is
// allowed) and validates it. Its errors never quote the text.
func (s *Schema) ValidateText(text string) error {
	v, err := decode([]byte(text))
	if err != nil {
		return fmt.Errorf("the answer (%d bytes) is not one JSON value: %w", len(text), err)
	}
	return s.Validate(v)
}

// Validate checks v, a value as encoding/json decodes it (numbers as
// json.Number or float64).
func (s *Schema) Validate(v any) error {
	return s.validate(v, "$")
}

func (s *Schema) validate(v any, at string) error {
	if len(s.types) > 0 && !slices.ContainsFunc(s.types, func(t string) bool { return is(v, t) }) {
		return fmt.Errorf("at %s: want %s, got %s", at, strings.Join(s.types, " or "), kind(v))
	}
	if s.hasEnum && !slices.ContainsFunc(s.enum, func(e any) bool { return equal(e, v) }) {
		return fmt.Errorf("at %s: the value is not one of the %d enum values", at, len(s.enum))
	}
	if obj, ok := v.(map[string]any); ok {
		for _, name := range s.required {
			if _, ok := obj[name]; !ok {
				return fmt.Errorf("at %s: required property %q is missing", at, name)
			}
		}
		names := make([]string, 0, len(s.properties))
		for name := range s.properties {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if pv, ok := obj[name]; ok {
				if err := s.properties[name].validate(pv, at+"."+name); err != nil {
					return err
				}
			}
		}
	}
	if list, ok := v.([]any); ok && s.items != nil {
		for i, e := range list {
			if err := s.items.validate(e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// decode reads exactly one JSON value, numbers kept exact.
func decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, describe(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more follows the first JSON value")
	}
	return v, nil
}

// describe says what is wrong with a text that is not JSON without quoting
// it (a json.SyntaxError's message holds a character of the text).
func describe(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("it is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("it ends before its JSON value does")
	case errors.As(err, &syn):
		return fmt.Errorf("a syntax error at byte %d", syn.Offset)
	}
	return errors.New("it cannot be read as JSON")
}

// is reports whether v is of the JSON Schema type t.
func is(v any, t string) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	case "number":
		_, ok := number(v)
		return ok
	case "integer":
		f, ok := number(v)
		return ok && f.IsInt()
	}
	return false
}

// number is v as an exact number, if it is one.
func number(v any) (*big.Float, bool) {
	switch n := v.(type) {
	case json.Number:
		f, _, err := big.ParseFloat(string(n), 10, 256, big.ToNearestEven)
		return f, err == nil
	case float64:
		return big.NewFloat(n), true
	}
	return nil, false
}

// equal is JSON equality: numbers by value (1 and 1.0 are equal), objects
// by their members, arrays in order.
func equal(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x.Cmp(y) == 0
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equal(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		return ok && slices.EqualFunc(x, y, equal)
	default:
		return a == b
	}
}

// kind names v's JSON type, for errors.
func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	if f, ok := number(v); ok && f.IsInt() {
		return "an integer"
	}
	return "a number"
}
