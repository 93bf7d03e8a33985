package wire

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Hand-built encodings: a tag byte is field<<3 | wire type (0 varint,
// 1 fixed64, 2 bytes, 3 start group, 4 end group, 5 fixed32).

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestFieldNumbers(t *testing.T) {
	// Each constant against the generated descriptor, so the two cannot
	// drift apart.
	msg := func(m interface {
		ProtoReflect() protoreflect.Message
	}) protoreflect.MessageDescriptor {
		return m.ProtoReflect().Descriptor()
	}
	cases := []struct {
		md   protoreflect.MessageDescriptor
		name protoreflect.Name
		num  protowire.Number
	}{
		{msg(&runlogv1.Record{}), "seq", RecordSeq},
		{msg(&runlogv1.Record{}), "id", RecordID},
		{msg(&runlogv1.Record{}), "time_unix_nano", RecordTime},
		{msg(&runlogv1.Record{}), "client_id", RecordClientID},
		{msg(&runlogv1.Record{}), "client_seq", RecordClientSeq},
		{msg(&runlogv1.Record{}), "synthesized", RecordSynthesized},
		{msg(&runlogv1.HistoryRow{}), "step", HistoryStep},
		{msg(&runlogv1.HistoryRow{}), "items", HistoryItems},
		{msg(&runlogv1.ConfigUpdate{}), "set", UpdateSet},
		{msg(&runlogv1.ConfigUpdate{}), "remove", UpdateRemove},
		{msg(&runlogv1.SummaryUpdate{}), "set", UpdateSet},
		{msg(&runlogv1.SummaryUpdate{}), "remove", UpdateRemove},
		{msg(&runlogv1.SystemStats{}), "items", StatsItems},
		{msg(&runlogv1.FileRef{}), "path", FilePath},
		{msg(&runlogv1.MetricDefinition{}), "name", MetricName},
		{msg(&runlogv1.Rewind{}), "step", RewindStep},
		{msg(&runlogv1.Rewind{}), "step", HistoryStep}, // Step reads both
		{msg(&runlogv1.Item{}), "key", ItemKey},
		{msg(&runlogv1.Item{}), "value", ItemValue},
		{msg(&runlogv1.Value{}), "double_value", ValueDouble},
		{msg(&runlogv1.Value{}), "int_value", ValueInt},
		{msg(&runlogv1.Value{}), "bool_value", ValueBool},
		{msg(&runlogv1.Value{}), "string_value", ValueString},
		{msg(&runlogv1.Value{}), "json_value", ValueJSON},
	}
	for _, c := range cases {
		fd := c.md.Fields().ByName(c.name)
		if fd == nil || fd.Number() != c.num {
			t.Errorf("%s.%s: constant %d, descriptor %v", c.md.Name(), c.name, c.num, fd)
		}
	}
	// The payload oneof: every member in order, named as its kind.
	od := msg(&runlogv1.Record{}).Oneofs().ByName("payload")
	if od.Fields().Len() != int(NumKinds-1) {
		t.Fatalf("payload oneof has %d members, %d kinds", od.Fields().Len(), NumKinds-1)
	}
	for i := range od.Fields().Len() {
		fd := od.Fields().Get(i)
		k := KindOfField(fd.Number())
		if k.String() != string(fd.Name()) || k.Field() != fd.Number() {
			t.Errorf("payload field %d %s: kind %v, field %d", fd.Number(), fd.Name(), k, k.Field())
		}
	}
	for _, num := range []protowire.Number{PayloadFirst - 1, PayloadLast + 1, 0} {
		if k := KindOfField(num); k != KindNone {
			t.Errorf("field %d is kind %v", num, k)
		}
	}
	for num := HeaderFirst; num <= HeaderLast; num++ {
		if fd := msg(&runlogv1.Record{}).Fields().ByNumber(num); fd == nil || fd.ContainingOneof() != nil || !IsHeader(num) {
			t.Errorf("header field %d: %v", num, fd)
		}
	}
}

func TestScanner(t *testing.T) {
	type field struct {
		num protowire.Number
		typ protowire.Type
		u   uint64
		b   string
	}
	cases := []struct {
		name   string
		in     []byte
		want   []field
		errNum protowire.Number // the field number a *FieldError names
		err    bool
	}{
		{name: "empty", in: nil},
		{name: "varint", in: []byte{0x08, 0x96, 0x01}, want: []field{{1, 0, 150, ""}}},
		{name: "one-byte varint", in: []byte{0x18, 0x05}, want: []field{{3, 0, 5, ""}}},
		{name: "bytes", in: []byte{0x12, 0x02, 'h', 'i'}, want: []field{{2, 2, 0, "hi"}}},
		{name: "empty bytes", in: []byte{0x12, 0x00}, want: []field{{2, 2, 0, ""}}},
		{name: "fixed64", in: []byte{0x09, 1, 0, 0, 0, 0, 0, 0, 0}, want: []field{{1, 1, 1, ""}}},
		{name: "fixed32", in: []byte{0x0d, 2, 0, 0, 0}, want: []field{{1, 5, 2, ""}}},
		{name: "group", in: []byte{0x0b, 0x10, 0x01, 0x0c}, want: []field{{1, 3, 0, "\x10\x01"}}},
		{name: "two-byte tag", in: []byte{0xa0, 0x01, 0x30}, want: []field{{20, 0, 0x30, ""}}},
		{name: "long length", in: cat([]byte{0x12, 0x80, 0x01}, bytes.Repeat([]byte{'x'}, 128)), want: []field{{2, 2, 0, string(bytes.Repeat([]byte{'x'}, 128))}}},
		{name: "several", in: []byte{0x08, 0x01, 0x12, 0x01, 'a', 0x08, 0x02}, want: []field{{1, 0, 1, ""}, {2, 2, 0, "a"}, {1, 0, 2, ""}}},

		{name: "truncated tag", in: []byte{0x80}, err: true},
		{name: "field number 0", in: []byte{0x00, 0x01}, err: true},
		{name: "field number past the maximum", in: protowire.AppendVarint(protowire.AppendTag(nil, protowire.MaxValidNumber+1, protowire.VarintType), 1), err: true},
		{name: "truncated varint", in: []byte{0x08, 0x96}, errNum: 1, err: true},
		{name: "varint of 11 bytes", in: cat([]byte{0x08}, bytes.Repeat([]byte{0xff}, 10), []byte{0x01}), errNum: 1, err: true},
		{name: "length past the end", in: []byte{0x12, 0x05, 'a'}, errNum: 2, err: true},
		{name: "long length past the end", in: []byte{0x12, 0x80, 0x01, 'a'}, errNum: 2, err: true},
		{name: "truncated length", in: []byte{0x12}, errNum: 2, err: true},
		{name: "truncated fixed64", in: []byte{0x09, 1, 2, 3}, errNum: 1, err: true},
		{name: "truncated fixed32", in: []byte{0x0d, 1}, errNum: 1, err: true},
		{name: "unterminated group", in: []byte{0x0b, 0x10, 0x01}, errNum: 1, err: true},
		{name: "end group alone", in: []byte{0x0c}, errNum: 1, err: true},
		{name: "reserved wire type 6", in: []byte{0x0e, 0x00}, errNum: 1, err: true},
		{name: "good field then a bad one", in: []byte{0x08, 0x01, 0x12, 0x09}, want: []field{{1, 0, 1, ""}}, errNum: 2, err: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []field
			s := NewScanner(c.in)
			for s.Next() {
				// U holds the value of numeric fields, B that of the others.
				f := s.Field()
				if f.Type == protowire.BytesType || f.Type == protowire.StartGroupType {
					got = append(got, field{f.Num, f.Type, 0, string(f.B)})
				} else {
					got = append(got, field{f.Num, f.Type, f.U, ""})
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("fields %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("field %d: %+v, want %+v", i, got[i], c.want[i])
				}
			}
			err := s.Err()
			if (err != nil) != c.err {
				t.Fatalf("err = %v, want error %v", err, c.err)
			}
			if err != nil {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Num != c.errNum {
					t.Fatalf("err = %v (%T), want a *FieldError for field %d", err, err, c.errNum)
				}
				if s.Next() || len(s.Rest()) != 0 {
					t.Fatal("scanner goes on after an error")
				}
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	id := bytes.Repeat([]byte{7}, 16)
	full := cat(
		[]byte{0x08, 0x07},   // seq 7
		[]byte{0x12, 16}, id, // id
		[]byte{0x18, 0x80, 0x01},       // time 128
		[]byte{0x22, 0x01, 'c'},        // client_id
		[]byte{0x28, 0x03},             // client_seq 3
		[]byte{0x30, 0x01},             // synthesized
		[]byte{0x62, 0x02, 0x08, 0x05}, // history {step 5}
	)
	cases := []struct {
		name string
		in   []byte
		want Header
		err  error // nil: no error; errAny: some error
	}{
		{name: "every field", in: full, want: Header{Seq: 7, ID: id, Time: 128, ClientID: []byte("c"), ClientSeq: 3, Synthesized: true, Kind: KindHistory, Payload: []byte{0x08, 0x05}, Payloads: 1}},
		{name: "empty", in: nil},
		{name: "last seq wins", in: []byte{0x08, 0x01, 0x08, 0x02}, want: Header{Seq: 2}},
		// The decoder reads a known field of another wire type as an
		// unknown field: field 20 (exit) as a varint is no exit.
		{name: "exit as a varint", in: []byte{0xa0, 0x01, 0x30}},
		{name: "seq as bytes", in: []byte{0x0a, 0x01, 0x05}},
		{name: "id as a varint", in: []byte{0x10, 0x05}},
		{name: "payload as fixed32", in: []byte{0x65, 1, 2, 3, 4}},
		{name: "last payload wins", in: []byte{0xa2, 0x01, 0x00, 0x62, 0x00}, want: Header{Kind: KindHistory, Payload: []byte{}, Payloads: 2}},
		{name: "exit", in: []byte{0xa2, 0x01, 0x02, 0x08, 0x01}, want: Header{Kind: KindExit, Payload: []byte{0x08, 0x01}, Payloads: 1}},
		{name: "unknown field", in: []byte{0xf8, 0x01, 0x05, 0x08, 0x02}, want: Header{Seq: 2}},
		{name: "synthesized false", in: []byte{0x30, 0x01, 0x30, 0x00}, want: Header{}},
		// Left to CheckClientID.
		{name: "client_id not UTF-8", in: []byte{0x22, 0x01, 0xff}, want: Header{ClientID: []byte{0xff}}},
		{name: "truncated varint", in: []byte{0x08, 0x80}, err: errAny},
		{name: "payload past the end", in: []byte{0x62, 0x05, 0x08}, err: errAny},
		{name: "truncated tag", in: []byte{0xa0}, err: errAny},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := ParseHeader(c.in)
			switch {
			case c.err == nil && err != nil:
				t.Fatalf("err = %v", err)
			case c.err == errAny && err == nil, c.err != nil && c.err != errAny && !errors.Is(err, c.err):
				t.Fatalf("err = %v, want %v", err, c.err)
			case err != nil:
				return
			}
			if h.Seq != c.want.Seq || !bytes.Equal(h.ID, c.want.ID) || h.Time != c.want.Time ||
				!bytes.Equal(h.ClientID, c.want.ClientID) || h.ClientSeq != c.want.ClientSeq ||
				h.Synthesized != c.want.Synthesized || h.Kind != c.want.Kind ||
				!bytes.Equal(h.Payload, c.want.Payload) || (h.Payload == nil) != (c.want.Payload == nil) ||
				h.Payloads != c.want.Payloads {
				t.Fatalf("header %+v, want %+v", h, c.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestCheckClientID(t *testing.T) {
	for _, c := range []struct {
		id string
		ok bool
	}{{"", true}, {"client-1", true}, {"é", true}, {"\xff", false}, {"a\xc3", false}} {
		h := Header{ClientID: []byte(c.id)}
		if err := h.CheckClientID(); (err == nil) != c.ok || err != nil && !errors.Is(err, ErrClientID) {
			t.Errorf("client_id %q: %v", c.id, err)
		}
	}
}

func TestStep(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want int64
		err  bool
	}{
		{name: "none", in: nil, want: 0},
		{name: "step", in: []byte{0x08, 0x05}, want: 5},
		{name: "negative", in: protowire.AppendVarint([]byte{0x08}, uint64(1<<64-3)), want: -3},
		{name: "last wins", in: []byte{0x08, 0x05, 0x12, 0x00, 0x08, 0x06}, want: 6},
		{name: "step as bytes is unknown", in: []byte{0x08, 0x05, 0x0a, 0x01, '7'}, want: 5},
		{name: "truncated", in: []byte{0x08}, err: true},
		{name: "item past the end", in: []byte{0x08, 0x01, 0x12, 0x04}, err: true},
	}
	for _, c := range cases {
		got, err := Step(c.in)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("%s: Step = %d, %v; want %d, error %v", c.name, got, err, c.want, c.err)
		}
	}
}

func TestSplitRow(t *testing.T) {
	item := []byte{0x12, 0x03, 0x0a, 0x01, 'k'}
	cases := []struct {
		name  string
		in    []byte
		step  int64
		items []byte
		ok    bool
	}{
		{name: "step then items", in: cat([]byte{0x08, 0x07}, item), step: 7, items: item, ok: true},
		{name: "items only", in: item, items: item, ok: true},
		{name: "step only", in: []byte{0x08, 0x07}, step: 7, ok: true},
		{name: "empty", in: nil, ok: true},
		{name: "items then step", in: cat(item, []byte{0x08, 0x07}), items: cat(item, []byte{0x08, 0x07}), ok: true},
		{name: "unknown field first", in: cat([]byte{0x18, 0x01}, item), ok: false},
		{name: "step as bytes", in: []byte{0x0a, 0x00}, ok: false},
		{name: "truncated step", in: []byte{0x08}, ok: false},
		// The items are the caller's to read: ItemsOK refuses this one.
		{name: "item past the end", in: []byte{0x08, 0x01, 0x12, 0x09}, step: 1, items: []byte{0x12, 0x09}, ok: true},
	}
	for _, c := range cases {
		step, items, ok := SplitRow(c.in)
		if ok != c.ok || ok && (step != c.step || !bytes.Equal(items, c.items)) {
			t.Errorf("%s: SplitRow = %d, %x, %v; want %d, %x, %v", c.name, step, items, ok, c.step, c.items, c.ok)
		}
		if c.name == "item past the end" && ItemsOK(items, HistoryItems) {
			t.Errorf("%s: ItemsOK takes %x", c.name, items)
		}
	}
}

func TestSplitItemAndParseValue(t *testing.T) {
	double := []byte{0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f} // 1.0
	cases := []struct {
		name  string
		in    []byte
		key   string
		field protowire.Number
		x     uint64
		b     string
		ok    bool
	}{
		{name: "double", in: cat([]byte{0x0a, 0x01, 'k', 0x12, 0x09}, double), key: "k", field: ValueDouble, x: 0x3ff0000000000000, ok: true},
		{name: "value first", in: cat([]byte{0x12, 0x09}, double, []byte{0x0a, 0x01, 'k'}), key: "k", field: ValueDouble, x: 0x3ff0000000000000, ok: true},
		{name: "int", in: []byte{0x0a, 0x01, 'k', 0x12, 0x02, 0x10, 0x7f}, key: "k", field: ValueInt, x: 0x7f, ok: true},
		{name: "bool other than 1", in: []byte{0x0a, 0x01, 'k', 0x12, 0x02, 0x18, 0x05}, key: "k", field: ValueBool, x: 1, ok: true},
		{name: "string", in: []byte{0x0a, 0x01, 'k', 0x12, 0x03, 0x22, 0x01, 's'}, key: "k", field: ValueString, b: "s", ok: true},
		{name: "json", in: []byte{0x0a, 0x01, 'k', 0x12, 0x04, 0x2a, 0x02, '[', ']'}, key: "k", field: ValueJSON, b: "[]", ok: true},
		{name: "empty value", in: []byte{0x0a, 0x01, 'k', 0x12, 0x00}, key: "k", ok: true},
		{name: "no value", in: []byte{0x0a, 0x01, 'k'}, key: "k", ok: true},
		{name: "two keys", in: []byte{0x0a, 0x01, 'k', 0x0a, 0x01, 'j'}, ok: false},
		{name: "two values", in: []byte{0x12, 0x00, 0x12, 0x00}, ok: false},
		{name: "key not UTF-8", in: []byte{0x0a, 0x01, 0xff}, ok: false},
		{name: "unknown field", in: []byte{0x18, 0x01}, ok: false},
		{name: "key as a varint", in: []byte{0x08, 0x01}, ok: false},
		{name: "key past the end", in: []byte{0x0a, 0x05, 'k'}, ok: false},
		{name: "string value not UTF-8", in: []byte{0x0a, 0x01, 'k', 0x12, 0x03, 0x22, 0x01, 0xfe}, key: "k", ok: false},
		{name: "double as a varint", in: []byte{0x0a, 0x01, 'k', 0x12, 0x02, 0x08, 0x01}, key: "k", ok: false},
		{name: "two value fields", in: []byte{0x0a, 0x01, 'k', 0x12, 0x04, 0x10, 0x01, 0x10, 0x02}, key: "k", ok: false},
		{name: "truncated double", in: []byte{0x0a, 0x01, 'k', 0x12, 0x03, 0x09, 0x00, 0x00}, key: "k", ok: false},
	}
	for _, c := range cases {
		key, val, ok := SplitItem(c.in)
		var v Value
		if ok {
			v, ok = ParseValue(val)
		}
		if ok != c.ok {
			t.Errorf("%s: ok %v, want %v", c.name, ok, c.ok)
			continue
		}
		if ok && (string(key) != c.key || v.Field != c.field || v.X != c.x || string(v.B) != c.b) {
			t.Errorf("%s: key %q value %+v", c.name, key, v)
		}
		// ItemsOK takes exactly what SplitItem and ParseValue take.
		if got := ItemsOK(protowire.AppendBytes([]byte{0x12}, c.in), HistoryItems); got != c.ok {
			t.Errorf("%s: ItemsOK %v, want %v", c.name, got, c.ok)
		}
	}
}

func TestSplitUpdate(t *testing.T) {
	set := []byte{0x0a, 0x03, 0x0a, 0x01, 'k'}
	cases := []struct {
		name        string
		in          []byte
		set, remove []byte
		ok          bool
	}{
		{name: "set then remove", in: cat(set, []byte{0x12, 0x01, 'x'}), set: set, remove: []byte{0x12, 0x01, 'x'}, ok: true},
		{name: "set only", in: set, set: set, ok: true},
		{name: "remove only", in: []byte{0x12, 0x01, 'x'}, remove: []byte{0x12, 0x01, 'x'}, ok: true},
		{name: "remove then set", in: cat([]byte{0x12, 0x01, 'x'}, set), ok: false},
		{name: "remove not UTF-8", in: []byte{0x12, 0x01, 0xff}, ok: false},
		{name: "unknown field", in: []byte{0x18, 0x01}, ok: false},
		{name: "set past the end", in: []byte{0x0a, 0x07, 0x0a}, ok: false},
	}
	for _, c := range cases {
		s, r, ok := SplitUpdate(c.in)
		if ok != c.ok || ok && (!bytes.Equal(s, c.set) || !bytes.Equal(r, c.remove)) {
			t.Errorf("%s: SplitUpdate = %x, %x, %v", c.name, s, r, ok)
		}
	}
}

func TestFrame(t *testing.T) {
	// CRC-32C of "123456789" is e3069283, the check value of the
	// Castagnoli polynomial: the stored checksum is that, big-endian.
	v := AppendFrame([]byte("x"), []byte("123456789"))
	if want := "x\xe3\x06\x92\x83123456789"; string(v) != want {
		t.Fatalf("frame %q, want %q", v, want)
	}
	rec, err := Unframe(v[1:])
	if err != nil || string(rec) != "123456789" {
		t.Fatalf("Unframe = %q, %v", rec, err)
	}
	// In place, as the log writes a batch.
	b := BeginFrame([]byte("y"))
	b = append(b, "123456789"...)
	SealFrame(b[1:])
	if !bytes.Equal(b[1:], v[1:]) {
		t.Fatalf("sealed %x, want %x", b[1:], v[1:])
	}
	for _, bad := range [][]byte{
		nil,
		{0xe3, 0x06, 0x92},
		[]byte("\xe3\x06\x92\x83123456780"),
		[]byte("\xe3\x06\x92\x82123456789"),
		[]byte("\x00\x00\x00\x01"),
	} {
		var ce *ChecksumError
		if _, err := Unframe(bad); !errors.Is(err, ErrChecksum) || !errors.As(err, &ce) {
			t.Errorf("Unframe(%q) = %v, want a checksum error", bad, err)
		}
	}
	// The empty record's checksum is 0.
	if rec, err := Unframe([]byte{0, 0, 0, 0}); err != nil || len(rec) != 0 {
		t.Fatalf("empty record: %q, %v", rec, err)
	}
}

func TestAppendHeader(t *testing.T) {
	id := bytes.Repeat([]byte{1}, 16)
	b := AppendHeader(nil, 9, id, 1234, "c", 3)
	b = append(b, 0x62, 0x02, 0x08, 0x04)
	h, err := ParseHeader(b)
	if err != nil || h.Seq != 9 || !bytes.Equal(h.ID, id) || h.Time != 1234 || string(h.ClientID) != "c" || h.ClientSeq != 3 || h.Kind != KindHistory {
		t.Fatalf("header %+v, %v", h, err)
	}
	if b := AppendClient(nil, "", 0); len(b) != 0 {
		t.Fatalf("unset client fields written: %x", b)
	}
}

func TestPacked(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		typ  protowire.Type
		want []uint64
		err  bool
	}{
		{name: "varints", in: []byte{0x01, 0x96, 0x01, 0x00}, typ: protowire.VarintType, want: []uint64{1, 150, 0}},
		{name: "fixed32", in: []byte{1, 0, 0, 0, 2, 0, 0, 0}, typ: protowire.Fixed32Type, want: []uint64{1, 2}},
		{name: "fixed64", in: []byte{1, 0, 0, 0, 0, 0, 0, 0}, typ: protowire.Fixed64Type, want: []uint64{1}},
		{name: "empty", in: nil, typ: protowire.VarintType},
		{name: "truncated varint", in: []byte{0x01, 0x96}, typ: protowire.VarintType, err: true},
		{name: "truncated fixed32", in: []byte{1, 0, 0}, typ: protowire.Fixed32Type, err: true},
		{name: "bytes are not packable", in: []byte{0x01}, typ: protowire.BytesType, err: true},
	}
	for _, c := range cases {
		var got []uint64
		err := Packed(c.in, c.typ, func(v uint64) error { got = append(got, v); return nil })
		if (err != nil) != c.err || !c.err && fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %v, %v; want %v, error %v", c.name, got, err, c.want, c.err)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := Packed([]byte{1, 2, 3}, protowire.VarintType, func(uint64) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("Packed went on after fn's error: %v, %d calls", err, n)
	}
}
