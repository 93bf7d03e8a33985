// Package replay reads a run's log back: it folds records into the run's
// state, streams the live history, iterates records with filters and checks a
// log. It is the one implementation of "apply a record to a run's state": the
// service's queries and crash recovery and the hub's store all fold with
// State, so every view of a run agrees with its log.
//
// # Invariants
//
//   - State is a pure function of the records applied to it, in order.
//     Applying records 1..N to a new State, or restoring a State saved after
//     record K (MarshalBinary) and applying K+1..N, gives the same state.
//   - State never keeps history rows. Its memory grows with the number of
//     config and summary keys and, for history, with the number of places
//     where the step sequence is irregular, capped at maxSegments; see
//     Caveats.
//   - A history row at step s written at seq q is live iff no rewind with a
//     seq after q has a step <= s. History, SampleHistory, CountHistory and
//     State.HistoryRows all apply this rule.
//   - Folding encoded records (State.ApplyEncoded, DecodeEvent with
//     State.ApplyEvent, Fold) gives exactly the state Apply gives their
//     decoding, and fails exactly when proto.Unmarshal fails. History rows
//     and stats, most of a run, are checked without building their items.
//   - The step floor (State.LastStep) is the step of the last history row, or
//     the step of a rewind that came after it, and -1 for a run without
//     history: the same value as wal.Log.LastStep, the lowest step the next
//     row may use.
//   - The readers (History, SampleHistory, CountHistory, Records,
//     EncodedRecords, Fold, Overview) take a Source and read it in the
//     source's own short transactions; they hold at most a bounded
//     amount of it in memory. History first finds the end of the log and the
//     rewinds, then streams rows up to that end, so a log that grows while it
//     is read gives a consistent prefix.
//   - The JSON lines format (AppendJSON, AppendJSONEncoded) is the public
//     audit format, documented in docs/replay.md: lossless for everything a
//     record holds except unknown protobuf fields. AppendJSONEncoded writes
//     exactly what decoding and AppendJSON write, and fails exactly when
//     decoding fails.
//   - Readers stop at the first record that does not decode, with an error
//     (a wal.CorruptError) naming its seq, after passing on every record
//     before it. Verification itself is wal.Log.Verify; VerifyResponse
//     shapes its result as the service's Verify RPC does.
//
// # Caveats
//
// Counting live history rows after a rewind needs to know how many rows have
// a step at or after the rewind's. State keeps the live rows as runs of evenly
// spaced steps (0, 1, 2, ... is one run however long), so the count is exact
// for ordinary logs. A log whose steps jump irregularly (for example a step
// that counts tokens) makes one run per jump; past maxSegments runs the
// oldest are merged, and a rewind that lands inside a merged stretch is
// counted by interpolation. State.HistoryRowsExact then reports false, and a
// caller that has the log can count exactly with CountHistory.
package replay
