package web

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
)

// TestOpenAPISchemasMatchAnswers: every field an answer carries is in its
// openapi.json schema, and the schema names no field the answer lacks, so
// the document a client is generated from says what the server sends.
func TestOpenAPISchemasMatchAnswers(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for schema, answer := range map[string]any{
		"Registry": registryView{}, "TestResult": testView{}, "CheckAnswer": checkAnswer{}, "Notifier": notifierView{},
		"Status": watcher.Status{}, "CycleReport": watcher.CycleReport{}, "RegistryWait": watcher.RegistryWait{},
		"Image": store.Image{}, "Location": store.Location{}, "HistoryEntry": store.HistoryEntry{},
		"Watcher": store.WatcherState{}, "OutboxMessage": store.OutboxMessage{},
	} {
		documented := doc.Components.Schemas[schema].Properties
		sent := map[string]bool{}
		jsonNames(reflect.TypeOf(answer), sent)
		for name := range sent {
			if _, ok := documented[name]; !ok {
				t.Errorf("openapi.json's %s lacks %q, which the server sends", schema, name)
			}
		}
		for name := range documented {
			if !sent[name] {
				t.Errorf("openapi.json's %s names %q, which the server never sends", schema, name)
			}
		}
	}
}

// jsonNames adds the names encoding/json gives t's fields, embedded
// structs' included.
func jsonNames(t reflect.Type, out map[string]bool) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case f.Anonymous && name == "":
			jsonNames(f.Type, out)
		case name == "-" || !f.IsExported():
		case name == "":
			out[f.Name] = true
		default:
			out[name] = true
		}
	}
}
