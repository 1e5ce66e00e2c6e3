package mcp

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// decodeValid must give exactly what encoding/json's Decoder with
// UseNumber gives, for every input scan accepts.
func FuzzDecodeValidMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"q":"hi","n":-1.5e+10,"b":true,"z":null,"l":[1,"x",{"y":[]}]}`,
		`{"esc":"a\"b\\c\u00e9\ud83d\ude00\ud800","bad":"` + "\xff" + `"}`, `{"big":123456789012345678901234567890}`,
		` { "sp" : [ 1 , 2 ] } `, `[1,2]`, `"s"`, `0`, `null`, `{"k":"\/"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if scan(data, 64, true) != nil {
			return
		}
		got, err := decodeValid(data)
		if err != nil {
			t.Fatalf("decodeValid(%q): %v, but scan accepted it", data, err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json refused what scan accepted: %q: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeValid(%q)\n got %#v\nwant %#v", data, got, want)
		}
	})
}
