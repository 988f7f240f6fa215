package jsonschema

import (
	"strings"
	"testing"
)

func TestCompileRefusesWhatItDoesNotCheck(t *testing.T) {
	for name, tc := range map[string]struct {
		schema string
		says   string
	}{
		"a keyword beyond the subset":       {`{"type":"string","minLength":3}`, `at $: keyword "minLength" is not supported; the self-test checks only type, required, properties, items, enum: remove it`},
		"a nested keyword beyond it":        {`{"properties":{"a":{"pattern":"x"}}}`, `at $.a: keyword "pattern" is not supported`},
		"a keyword of items":                {`{"items":{"additionalProperties":false}}`, `at $[]: keyword "additionalProperties"`},
		"an unknown type":                   {`{"type":"float"}`, `at $: type float is not one of object, array, string, number, integer, boolean, null`},
		"an empty type list":                {`{"type":[]}`, "type is an empty list"},
		"a type that is a number":           {`{"type":1}`, "type is a name or a list of names"},
		"required that is not a list":       {`{"required":"a"}`, "required is a list of property names, not a string"},
		"required with a number":            {`{"required":["a",1]}`, "required lists property names (strings), not an integer"},
		"properties that is not an object":  {`{"properties":[]}`, "properties is an object of schemas, not an array"},
		"an empty enum":                     {`{"enum":[]}`, "enum is a non-empty list"},
		"a schema that is not an object":    {`"string"`, "at $: a schema is a JSON object, not a string"},
		"not JSON":                          {`{"type":`, "not JSON: it ends before its JSON value does"},
		"two values":                        {`{} {}`, "not JSON: more follows the first JSON value"},
		"a property's schema not an object": {`{"properties":{"a":true}}`, "at $.a: a schema is a JSON object, not a boolean"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Compile([]byte(tc.schema))
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Compile(%s) = %v; want an error saying %q", tc.schema, err, tc.says)
			}
		})
	}
}

func TestValidateText(t *testing.T) {
	const person = `{"type":"object","required":["name","age"],"properties":{
		"name":{"type":"string"},"age":{"type":"integer"},"role":{"enum":["admin","user",7,{"k":[1]}]},
		"tags":{"type":"array","items":{"type":["string","null"]}}}}`
	for name, tc := range map[string]struct {
		schema, answer string
		says           string // "" for valid
	}{
		"a valid object":                         {person, `{"name":"Ada","age":36,"role":"admin","tags":["x",null]}`, ""},
		"whitespace around the value":            {person, " \n\t{\"name\":\"Ada\",\"age\":36}\n ", ""},
		"an integer written 36.0 is an integer":  {person, `{"name":"Ada","age":36.0}`, ""},
		"extra properties are allowed":           {person, `{"name":"Ada","age":36,"x":{}}`, ""},
		"an enum of numbers compares by value":   {person, `{"name":"Ada","age":1,"role":7.0}`, ""},
		"an enum of objects compares by members": {person, `{"name":"Ada","age":1,"role":{"k":[1]}}`, ""},
		"a missing required property":            {person, `{"name":"Ada"}`, `at $: required property "age" is missing`},
		"a property of the wrong type":           {person, `{"name":"Ada","age":"old"}`, "at $.age: want integer, got a string"},
		"a fraction is not an integer":           {person, `{"name":"Ada","age":36.5}`, "at $.age: want integer, got a number"},
		"a value outside the enum":               {person, `{"name":"Ada","age":1,"role":"root"}`, "at $.role: the value is not one of the 4 enum values"},
		"an object enum value that differs":      {person, `{"name":"Ada","age":1,"role":{"k":[2]}}`, "not one of the 4 enum values"},
		"an array item of the wrong type":        {person, `{"name":"Ada","age":1,"tags":["a",3]}`, "at $.tags[1]: want string or null, got an integer"},
		"not an object":                          {person, `["Ada"]`, "at $: want object, got an array"},
		"not JSON at all":                        {person, `Sure! Here is the JSON`, "the answer (22 bytes) is not one JSON value: a syntax error at byte 1"},
		"JSON cut short (maxTokens too small)":   {person, `{"name":"Ada","ag`, "is not one JSON value: it ends before its JSON value does"},
		"an empty answer":                        {person, ``, "is not one JSON value: it is empty"},
		"text after the value":                   {person, `{"name":"Ada","age":1} and more`, "is not one JSON value: more follows the first JSON value"},
		"an empty schema accepts any value":      {`{}`, `[1,"a",null]`, ""},
		"a number type accepts integers":         {`{"type":"number"}`, `3`, ""},
		"null":                                   {`{"type":"null"}`, `null`, ""},
		"boolean is not null":                    {`{"type":"null"}`, `false`, "want null, got a boolean"},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := Compile([]byte(tc.schema))
			if err != nil {
				t.Fatal(err)
			}
			err = s.ValidateText(tc.answer)
			switch {
			case tc.says == "" && err != nil:
				t.Fatalf("ValidateText(%q) = %v; want valid", tc.answer, err)
			case tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)):
				t.Fatalf("ValidateText(%q) = %v; want an error saying %q", tc.answer, err, tc.says)
			}
			for _, secret := range []string{"Ada", "old", "root", "Sure"} {
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("the error quotes the answer: %v", err)
				}
			}
		})
	}
}

func TestDeepSchemasAreRefused(t *testing.T) {
	schema := strings.Repeat(`{"items":`, maxDepth+2) + `{}` + strings.Repeat(`}`, maxDepth+2)
	if _, err := Compile([]byte(schema)); err == nil || !strings.Contains(err.Error(), "nest more than") {
		t.Fatalf("Compile of a schema %d deep = %v; want it refused", maxDepth+2, err)
	}
}
