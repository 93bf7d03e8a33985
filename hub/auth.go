package hub

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// bearer checks the token of every call. The unary and stream interceptors
// share it so that the rule lives in one place.
type bearer struct {
	want [sha256.Size]byte
}

func newBearer(token string) *bearer {
	return &bearer{want: sha256.Sum256([]byte(token))}
}

func (b *bearer) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return status.Error(codes.Unauthenticated, "this hub needs a token: send \"authorization: Bearer <token>\" (runlog: --token-file)")
	}
	tok, ok := strings.CutPrefix(vals[0], "Bearer ")
	// Comparing digests keeps the time independent of where the tokens
	// differ and of their lengths.
	got := sha256.Sum256([]byte(tok))
	if !ok || subtle.ConstantTimeCompare(got[:], b.want[:]) != 1 {
		return status.Error(codes.Unauthenticated, "the hub refused the token")
	}
	return nil
}

func (b *bearer) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (b *bearer) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := b.check(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}
