package task

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds of a declaration. A declaration is a small document; anything
// larger is a mistake or an attack, and every instance keeps a copy.
const (
	MaxDeclarationBytes = 64 << 10
	MaxIDBytes          = 128
	MaxPurposeBytes     = 1024
	MaxListEntries      = 256
	MaxNameBytes        = 256
	MaxCalls            = 1_000_000_000
)

// ErrInvalid reports a declaration that cannot be accepted; the message
// says why.
var ErrInvalid = errors.New("task: invalid declaration")

// Declaration is the body of POST /_rampart/tasks: what the task is for.
//
//	{"id": "t-42", "purpose": "answer ticket 42",
//	 "tools": ["search", "crm_lookup"], "destinations": ["crm"],
//	 "data_classes": ["internal"], "max_calls": 50, "duration": "15m",
//	 "subjects": ["user:alice"]}
type Declaration struct {
	// ID names the task; generated when empty. 1-128 visible ASCII
	// characters, matched exactly (no case folding, no trimming).
	ID string `json:"id"`
	// Purpose is free text for the record and for policy (task.purpose).
	Purpose string `json:"purpose"`
	// Tools, Destinations and DataClasses are what the task may touch:
	// within_task_scope() is true of a call whose tool, destination and
	// data class are each listed (or empty).
	Tools        []string `json:"tools"`
	Destinations []string `json:"destinations"`
	DataClasses  []string `json:"data_classes"`
	// MaxCalls is the task's call budget across every instance; 0 is none.
	MaxCalls int64 `json:"max_calls"`
	// Deadline (RFC 3339) or Duration (a Go duration) bound the task's
	// life, at most max_task_duration; neither: max_task_duration.
	Deadline *time.Time `json:"deadline"`
	Duration string     `json:"duration"`
	// Subjects may call under the task besides the declarer (of the
	// declarer's tenant and issuer).
	Subjects []string `json:"subjects"`
}

// Decode reads a declaration strictly: one JSON object, no unknown or
// repeated keys, nothing after it, at most MaxDeclarationBytes.
func Decode(r io.Reader) (*Declaration, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDeclarationBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: body unreadable: %v", ErrInvalid, err)
	}
	if len(b) > MaxDeclarationBytes {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrInvalid, MaxDeclarationBytes)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%w: body is not UTF-8", ErrInvalid)
	}
	if err := noDuplicateKeys(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d Declaration
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the object", ErrInvalid)
	}
	return &d, nil
}

// declarationKeys are the keys of a declaration, spelt exactly:
// encoding/json would also take "ID" or "Tools" for them.
var declarationKeys = map[string]bool{"id": true, "purpose": true, "tools": true, "destinations": true,
	"data_classes": true, "max_calls": true, "deadline": true, "duration": true, "subjects": true}

// noDuplicateKeys refuses an object that names a key twice anywhere, and
// a declaration key in any other spelling: decoders disagree on which one
// wins, and a declaration must read the same to the orchestrator, the
// record and the enforcer.
func noDuplicateKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	depth := 0
	var walk func() error
	walk = func() error {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'):
			depth++
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := k.(string)
				if seen[key] {
					return fmt.Errorf("key %q repeated", key)
				}
				if depth == 1 && !declarationKeys[key] {
					return fmt.Errorf("unknown key %q", key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			depth--
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	if err := walk(); err != nil {
		return err
	}
	if t, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the object (%v)", t)
	}
	return nil
}

// ValidID reports why id cannot name a task: ids are 1-128 visible ASCII
// characters, as client-sent task ids are, so that no two spellings (case
// aside, which is significant) name one task.
func ValidID(id string) error {
	if len(id) == 0 || len(id) > MaxIDBytes {
		return fmt.Errorf("task id of %d bytes: want 1 to %d", len(id), MaxIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return fmt.Errorf("task id holds byte %#x: want visible ASCII", id[i])
		}
	}
	return nil
}

// NewID returns a fresh random task id.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "task-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Record turns d into the record of a new declared task of the
// declaring principal, starting now and ending by maxDuration at the
// latest.
func (d *Declaration) Record(tenant, issuer, subject string, now time.Time, maxDuration time.Duration) (*Record, error) {
	if d.ID == "" {
		d.ID = NewID()
	}
	if err := ValidID(d.ID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(d.Purpose) > MaxPurposeBytes || strings.ContainsFunc(d.Purpose, isControl) {
		return nil, fmt.Errorf("%w: purpose over %d bytes or holding control characters", ErrInvalid, MaxPurposeBytes)
	}
	for _, l := range []struct {
		name string
		v    []string
	}{{"tools", d.Tools}, {"destinations", d.Destinations}, {"data_classes", d.DataClasses}, {"subjects", d.Subjects}} {
		if err := validList(l.name, l.v); err != nil {
			return nil, err
		}
	}
	if d.MaxCalls < 0 || d.MaxCalls > MaxCalls {
		return nil, fmt.Errorf("%w: max_calls %d: want 0 (none) to %d", ErrInvalid, d.MaxCalls, MaxCalls)
	}
	deadline := now.Add(maxDuration)
	switch {
	case d.Deadline != nil && d.Duration != "":
		return nil, fmt.Errorf("%w: deadline and duration are exclusive", ErrInvalid)
	case d.Deadline != nil:
		if !d.Deadline.After(now) {
			return nil, fmt.Errorf("%w: deadline %s has passed", ErrInvalid, d.Deadline.Format(time.RFC3339))
		}
		deadline = minTime(deadline, *d.Deadline)
	case d.Duration != "":
		dur, err := time.ParseDuration(d.Duration)
		if err != nil || dur <= 0 {
			return nil, fmt.Errorf("%w: duration %q: want a positive Go duration", ErrInvalid, d.Duration)
		}
		deadline = minTime(deadline, now.Add(dur))
	}
	return &Record{
		Tenant: tenant, ID: d.ID, Declared: true, Issuer: issuer, Subject: subject, Subjects: d.Subjects,
		Purpose: d.Purpose, Tools: d.Tools, Destinations: d.Destinations, DataClasses: d.DataClasses,
		MaxCalls: d.MaxCalls, Started: now.UTC(), Deadline: deadline.UTC(), LastActive: now.UTC(),
	}, nil
}

func validList(name string, v []string) error {
	if len(v) > MaxListEntries {
		return fmt.Errorf("%w: %s lists %d entries, at most %d", ErrInvalid, name, len(v), MaxListEntries)
	}
	for _, s := range v {
		if s == "" || len(s) > MaxNameBytes || strings.ContainsFunc(s, isControl) {
			return fmt.Errorf("%w: %s: entry %q is empty, over %d bytes or holds control characters", ErrInvalid, name, s, MaxNameBytes)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
