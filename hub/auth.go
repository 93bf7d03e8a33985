package hub

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// ReadTokenFile returns the bearer token held in the file at path, without
// the white space around it: the file the hub is given (--token-file) and
// the one its clients send from. An empty path is no token (""); an empty
// file is an error, so that a truncated file never turns auth off.
func ReadTokenFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return tok, nil
}

// bearer checks the token of every call. The unary and stream interceptors
// share it so that the rule lives in one place.
type bearer struct {
	want [sha256.Size]byte
	log  *slog.Logger
}

func newBearer(token string, log *slog.Logger) *bearer {
	return &bearer{want: sha256.Sum256([]byte(token)), log: log}
}

func (b *bearer) check(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	var err error
	if len(vals) == 0 {
		err = status.Error(codes.Unauthenticated, "this hub needs a token: send \"authorization: Bearer <token>\" (runlog sync, show, runs: --token-file F; runlog service: --upstream-token-file F; F holds the hub's token)")
	} else {
		tok, ok := strings.CutPrefix(vals[0], "Bearer ")
		// Comparing digests keeps the time independent of where the
		// tokens differ and of their lengths.
		got := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(got[:], b.want[:]) != 1 {
			err = status.Error(codes.Unauthenticated, "the hub refused the token: it is not the one in the hub's --token-file (check the file given to --token-file, or to runlog service --upstream-token-file)")
		}
	}
	if err != nil {
		from := "unknown"
		if p, ok := peer.FromContext(ctx); ok {
			from = p.Addr.String()
		}
		b.log.Warn("call refused: bad or missing token", "method", method, "peer", from)
	}
	return err
}

func (b *bearer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := b.check(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (b *bearer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := b.check(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
