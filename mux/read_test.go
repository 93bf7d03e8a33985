package mux_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wire"
)

// readRaw reads a run through the service from seq from to seq to (0: the
// end), encoded or decoded, and returns the records as bytes (decoded ones
// marshalled again), how many responses carried them and the error that
// ended the stream (nil at its end).
func readRaw(t *testing.T, c runlogv1.RunlogClient, id string, from, to uint64, encoded bool) (recs [][]byte, decoded []*runlogv1.Record, responses int, err error) {
	t.Helper()
	rs, err := c.Read(ctxT(t), &runlogv1.ReadRequest{RunId: id, FromSeq: from, ToSeq: to, Encoded: encoded})
	if err != nil {
		t.Fatalf("Read %s: %v", id, err)
	}
	for {
		resp, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return recs, decoded, responses, nil
		}
		if err != nil {
			return recs, decoded, responses, err
		}
		responses++
		if encoded && len(resp.Records) > 0 || !encoded && len(resp.Encoded) > 0 {
			t.Fatalf("encoded=%v: response has %d decoded and %d encoded records", encoded, len(resp.Records), len(resp.Encoded))
		}
		recs = append(recs, resp.Encoded...)
		decoded = append(decoded, resp.Records...)
	}
}

// outOfOrderHistory is a history record whose row holds its items before
// its step: valid protobuf that an encoder never writes, so encoding the
// decoded record again changes its bytes.
func outOfOrderHistory(clientSeq uint64, step int64) []byte {
	var item []byte
	item = protowire.AppendTag(item, wire.ItemKey, protowire.BytesType)
	item = protowire.AppendString(item, "loss")
	item = protowire.AppendTag(item, wire.ItemValue, protowire.BytesType)
	item = protowire.AppendBytes(item, protowire.AppendFixed64(protowire.AppendTag(nil, wire.ValueDouble, protowire.Fixed64Type), 0x3ff0000000000000))
	var row []byte
	row = protowire.AppendTag(row, wire.HistoryItems, protowire.BytesType)
	row = protowire.AppendBytes(row, item)
	row = protowire.AppendTag(row, wire.HistoryStep, protowire.VarintType)
	row = protowire.AppendVarint(row, uint64(step))
	var rec []byte
	rec = protowire.AppendTag(rec, wire.RecordClientSeq, protowire.VarintType)
	rec = protowire.AppendVarint(rec, clientSeq)
	rec = protowire.AppendTag(rec, wire.RecordHistory, protowire.BytesType)
	rec = protowire.AppendBytes(rec, row)
	return rec
}

// TestReadEncodedKeepsStoredBytes: an encoded Read returns each record
// exactly as the log stores it, in bounded chunks, within from and to; a
// damaged record ends it with DATA_LOSS after the records before it.
func TestReadEncodedKeepsStoredBytes(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{})
	c := srv.Client
	ir := initRun(t, c, &runlogv1.InitRequest{RunId: "enc", Info: &runlogv1.RunInfo{Project: "p"}})
	st := openStream(t, c)
	const n = 1200 // more than one read chunk
	batch := append(muxtest.HistoryBatch(t, 1, 0, n, 3), outOfOrderHistory(n+1, n))
	if resp := send(t, st, &runlogv1.PublishRequest{RunId: "enc", ClientId: ir.ClientId, Batch: 1, Records: batch}); resp.Error != nil || len(resp.Rejections) != 0 || resp.LastSeq != n+2 {
		t.Fatalf("publish: %v", resp)
	}

	enc, _, responses, err := readRaw(t, c, "enc", 0, 0, true)
	if err != nil || len(enc) != n+2 || responses < 2 {
		t.Fatalf("encoded read: %d records in %d responses, %v; want %d in several", len(enc), responses, err, n+2)
	}
	_, dec, _, err := readRaw(t, c, "enc", 0, 0, false)
	if err != nil || len(dec) != n+2 {
		t.Fatalf("decoded read: %d records, %v", len(dec), err)
	}
	for i, b := range enc {
		r := new(runlogv1.Record)
		if err := proto.Unmarshal(b, r); err != nil || r.Seq != uint64(i+1) || !proto.Equal(r, dec[i]) {
			t.Fatalf("encoded record %d: seq %d, %v; differs from the decoded read: %v", i+1, r.Seq, err, !proto.Equal(r, dec[i]))
		}
	}
	last, _ := proto.Marshal(dec[n+1])
	if bytes.Equal(last, enc[n+1]) {
		t.Fatal("the out-of-order record encodes again to the same bytes: the test cannot tell a copy from a re-encoding")
	}
	part, _, _, err := readRaw(t, c, "enc", 10, 12, true)
	if err != nil || len(part) != 3 || !bytes.Equal(part[0], enc[9]) || !bytes.Equal(part[2], enc[11]) {
		t.Fatalf("read 10..12: %d records, %v", len(part), err)
	}

	// Once the service let go of the run, the file holds the same bytes.
	if _, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "enc", ClientId: ir.ClientId}); err != nil {
		t.Fatal(err)
	}
	awaitClosed(t, c, "enc")
	path := root.Dir(srv.Root()).Log("enc")
	l, err := wal.Open(path, wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	err = l.Scan(1, func(seq uint64, data []byte) error {
		if i < len(enc) && !bytes.Equal(data, enc[i]) {
			t.Errorf("seq %d: the log stores other bytes than the encoded read returned", seq)
		}
		i++
		return nil
	})
	l.Close()
	if err != nil || i != n+3 {
		t.Fatalf("scan of the file: %d records, %v; want %d", i, err, n+3)
	}

	// Damage record 700: both kinds of read send 1..699, then DATA_LOSS.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("records"))
		k := binary.BigEndian.AppendUint64(nil, 700)
		v := append([]byte(nil), b.Get(k)...)
		v[len(v)/2] ^= 0x5a
		return b.Put(k, v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, encoded := range []bool{true, false} {
		recs, decs, _, err := readRaw(t, c, "enc", 0, 0, encoded)
		if got := len(recs) + len(decs); got != 699 || status.Code(err) != codes.DataLoss || !bytes.Contains([]byte(err.Error()), []byte("seq 700")) {
			t.Fatalf("encoded=%v read of the damaged run: %d records, %v; want 699 and DATA_LOSS at seq 700", encoded, got, err)
		}
		// The damaged record comes typed, for readers to act on.
		var cr *runlogv1.CorruptRecord
		for _, d := range status.Convert(err).Details() {
			if c, ok := d.(*runlogv1.CorruptRecord); ok {
				cr = c
			}
		}
		if cr == nil || cr.GetSeq() != 700 || cr.GetPath() != path || !strings.Contains(cr.GetReason(), "checksum") {
			t.Fatalf("encoded=%v: DATA_LOSS detail %v, want seq 700 of %s and its checksum", encoded, cr, path)
		}
	}
}
