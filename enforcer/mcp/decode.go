package mcp

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// decodeValid decodes JSON that scan has already accepted into the values
// encoding/json's Decoder with UseNumber makes (map[string]any, []any,
// string, json.Number, bool, nil) without reflection: arguments are
// decoded on every call. It reports an error only for input scan would
// have refused.
func decodeValid(data []byte) (any, error) {
	d := decoder{data: data}
	d.skipSpace()
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return nil, d.fail()
	}
	return v, nil
}

type decoder struct {
	data []byte
	pos  int
}

func (d *decoder) skipSpace() { d.pos = skipSpace(d.data, d.pos) }

func (d *decoder) fail() error { return fmt.Errorf("mcp: arguments: invalid JSON at offset %d", d.pos) }

func (d *decoder) value() (any, error) {
	if d.pos >= len(d.data) {
		return nil, d.fail()
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == 't' && d.literal("true"):
		return true, nil
	case c == 'f' && d.literal("false"):
		return false, nil
	case c == 'n' && d.literal("null"):
		return nil, nil
	case c == '-' || c >= '0' && c <= '9':
		start := d.pos
		for d.pos < len(d.data) && isNumberByte(d.data[d.pos]) {
			d.pos++
		}
		return json.Number(d.data[start:d.pos]), nil // scan checked its grammar
	}
	return nil, d.fail()
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

func (d *decoder) literal(lit string) bool {
	if len(d.data)-d.pos < len(lit) || string(d.data[d.pos:d.pos+len(lit)]) != lit {
		return false
	}
	d.pos += len(lit)
	return true
}

func (d *decoder) object() (any, error) {
	d.pos++ // {
	m := map[string]any{}
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return m, nil
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.fail()
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.fail()
		}
		d.pos++
		d.skipSpace()
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[k] = v // scan refused repeated keys
		more, err := d.more('}')
		if err != nil {
			return nil, err
		}
		if !more {
			return m, nil
		}
	}
}

func (d *decoder) array() (any, error) {
	d.pos++ // [
	a := []any{}
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return a, nil
	}
	for {
		d.skipSpace()
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		more, err := d.more(']')
		if err != nil {
			return nil, err
		}
		if !more {
			return a, nil
		}
	}
}

// more reads what follows a member or an element: a comma (true, another
// follows) or closer (false, the container ends).
func (d *decoder) more(closer byte) (bool, error) {
	d.skipSpace()
	if d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ',':
			d.pos++
			return true, nil
		case closer:
			d.pos++
			return false, nil
		}
	}
	return false, d.fail()
}

// str decodes a string; one with escapes is decoded by encoding/json, so
// invalid UTF-8 and lone surrogates become U+FFFD exactly as there.
func (d *decoder) str() (string, error) {
	start := d.pos
	d.pos++ // "
	escaped := false
	for d.pos < len(d.data) {
		switch c := d.data[d.pos]; {
		case c == '"':
			d.pos++
			raw := d.data[start:d.pos]
			if !escaped && utf8.Valid(raw) {
				return string(raw[1 : len(raw)-1]), nil
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", d.fail()
			}
			return s, nil
		case c == '\\':
			escaped = true
			d.pos += 2
		default:
			d.pos++
		}
	}
	return "", d.fail()
}
