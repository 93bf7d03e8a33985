// Package hub serves a store.Store over gRPC: the Hub service that senders
// push runs into and tools query, with bearer-token auth and TLS.
//
// # Invariants
//
//   - An Ingest response is sent only after the store has made the records
//     it covers durable; its high_water is the run's durable mark.
//   - Responses on a stream come in request order, one per request. While
//     the store commits one group, requests that arrive on the stream are
//     merged into the next append, so a sender that keeps several batches in
//     flight gets them committed together.
//   - A gap ends the stream with FAILED_PRECONDITION and a HighWaterMark
//     detail; a record the store cannot take ends it with INVALID_ARGUMENT,
//     also with the mark after the records before it. A record that differs
//     from the one the hub holds at its seq (another run uses the run id)
//     ends it with ALREADY_EXISTS, which senders do not retry, naming the
//     run and the seq; nothing of that append is stored. Errors are mapped to
//     gRPC status in one place (statusOf).
//   - With Options.Token set, every RPC, the health check included, needs
//     the metadata "authorization: Bearer <token>"; the comparison takes
//     the same time whatever the token sent.
//   - The Server owns every goroutine of its streams: each Ingest handler
//     and the receiver that reads ahead for it. A receiver can only end
//     after its handler returned (its Recv is unblocked by the stream's
//     end), so the Server counts them and Stop and GracefulStop wait for
//     them after gRPC has ended the handlers.
//   - Server.Run stops in layers once its context is done: GracefulStop,
//     then Stop after Options.ShutdownTimeout, so a stream that a client
//     keeps open cannot hold the hub up.
//   - Memory per stream is bounded: at most Options.MaxQueued requests wait
//     behind the one being committed, and gRPC flow control holds back the
//     rest.
package hub
