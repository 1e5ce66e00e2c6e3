package task_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/task"
)

// Every way a declaration could read differently to two decoders, or
// carry more than a task needs, is refused with ErrInvalid.
func TestDeclarationRefused(t *testing.T) {
	long := strings.Repeat("x", task.MaxIDBytes+1)
	many := `["` + strings.Repeat(`t","`, task.MaxListEntries) + `t"]`
	for name, body := range map[string]string{
		"not an object":           `[]`,
		"unknown key":             `{"id":"t-1","scopes":["x"]}`,
		"repeated key":            `{"id":"t-1","tools":["search"],"tools":["shell"]}`,
		"repeated key, nested":    `{"id":"t-1","deadline":null,"id":"t-2"}`,
		"key case folded":         `{"ID":"t-1"}`,
		"data after the object":   `{"id":"t-1"} {"id":"t-2"}`,
		"oversized":               `{"purpose":"` + strings.Repeat("a", task.MaxDeclarationBytes) + `"}`,
		"not UTF-8":               "{\"purpose\":\"\xff\"}",
		"id with a space":         `{"id":"t 1"}`,
		"id with leading space":   `{"id":" t-1"}`,
		"id unicode":              `{"id":"t-\u0131"}`,
		"id fullwidth":            `{"id":"ｔ-1"}`,
		"id too long":             `{"id":"` + long + `"}`,
		"id control":              `{"id":"t\u0000"}`,
		"purpose control":         `{"purpose":"a\u001bb"}`,
		"too many tools":          `{"tools":` + many + `}`,
		"empty tool":              `{"tools":[""]}`,
		"negative budget":         `{"max_calls":-1}`,
		"fractional budget":       `{"max_calls":1.5}`,
		"deadline and duration":   `{"deadline":"2099-01-01T00:00:00Z","duration":"1m"}`,
		"deadline passed":         `{"deadline":"2001-01-01T00:00:00Z"}`,
		"duration not a duration": `{"duration":"soon"}`,
		"duration negative":       `{"duration":"-1m"}`,
		"tools not strings":       `{"tools":[1]}`,
	} {
		t.Run(name, func(t *testing.T) {
			d, err := task.Decode(strings.NewReader(body))
			if err == nil {
				_, err = d.Record("acme", "iss", "sub", time.Now(), time.Hour)
			}
			if !errors.Is(err, task.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
}

// A declaration's deadline is never past max_task_duration, whichever
// way it is given; an id is generated when none is.
func TestDeclarationBounds(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		body string
		want time.Time
	}{
		{`{}`, now.Add(time.Hour)},
		{`{"duration":"10m"}`, now.Add(10 * time.Minute)},
		{`{"duration":"10h"}`, now.Add(time.Hour)},
		{`{"deadline":"2026-12-02T08:30:00Z"}`, now.Add(30 * time.Minute)},
		{`{"deadline":"2099-12-02T08:30:00Z"}`, now.Add(time.Hour)},
	} {
		d, err := task.Decode(strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		r, err := d.Record("acme", "iss", "sub", now, time.Hour)
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		if !r.Deadline.Equal(c.want) || task.ValidID(r.ID) != nil || !r.Declared {
			t.Errorf("%s: deadline %s id %q, want %s", c.body, r.Deadline, r.ID, c.want)
		}
	}
}
