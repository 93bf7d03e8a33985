package mux

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Limits on what a request may carry. Every payload that becomes a record
// (Init's run info, Finish's exit) is held to the record limit; every other
// unary request to the record limit plus unaryHeadroom. A Publish request
// may carry at most the batch limit in records (each within the record
// limit); the transport accepts messages up to twice that, so a request
// over the batch limit is answered in-band instead of ending the stream.
const (
	// unaryHeadroom is what a unary request may carry beyond the record
	// limit: ids and options around a payload of at most that size.
	unaryHeadroom = 64 << 10
	// maxHistoryKeys bounds the keys one Query samples.
	maxHistoryKeys = 10_000
)

// batchLimit is the most record bytes one PublishRequest may carry.
func (s *Service) batchLimit() int {
	return max(maxMsgBytes, 2*s.maxRecord)
}

// transportLimit is the gRPC message limit: above the batch limit, so that
// a request over it still reaches the service and gets an answer.
func (s *Service) transportLimit() int {
	return 2 * s.batchLimit()
}

// checkUnary is the unary interceptor: it refuses a request over the size
// limit or with an enum value that is not defined (gRPC decodes those
// without complaint), before any handler sees it.
func (s *Service) checkUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if n, limit := proto.Size(m), s.maxRecord+unaryHeadroom; n > limit {
			return nil, rpcError(invalid("%s of %d bytes exceeds the limit of %d (--max-record-bytes %d plus %d)",
				m.ProtoReflect().Descriptor().Name(), n, limit, s.maxRecord, unaryHeadroom))
		}
		if err := checkEnums(m.ProtoReflect(), ""); err != nil {
			return nil, rpcError(err)
		}
	}
	return handler(ctx, req)
}

// checkEnums refuses an enum field anywhere in m whose value the schema
// does not define, naming the field by its path (prefix ends in "." when
// not empty).
func checkEnums(m protoreflect.Message, prefix string) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					err = checkEnums(mv.Message(), fmt.Sprintf("%s[%v].", name, k.Interface()))
					return err == nil
				})
			} else if fd.MapValue().Kind() == protoreflect.EnumKind {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					err = checkEnum(fd.MapValue().Enum(), mv.Enum(), fmt.Sprintf("%s[%v]", name, k.Interface()))
					return err == nil
				})
			}
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				switch fd.Kind() {
				case protoreflect.MessageKind, protoreflect.GroupKind:
					err = checkEnums(l.Get(i).Message(), fmt.Sprintf("%s[%d].", name, i))
				case protoreflect.EnumKind:
					err = checkEnum(fd.Enum(), l.Get(i).Enum(), fmt.Sprintf("%s[%d]", name, i))
				}
			}
		case fd.Kind() == protoreflect.MessageKind, fd.Kind() == protoreflect.GroupKind:
			err = checkEnums(v.Message(), name+".")
		case fd.Kind() == protoreflect.EnumKind:
			err = checkEnum(fd.Enum(), v.Enum(), name)
		}
		return err == nil
	})
	return err
}

func checkEnum(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber, name string) error {
	if ed.Values().ByNumber(n) != nil {
		return nil
	}
	return invalid("%s %d is not a %s value; use one of %s", name, n, ed.FullName(), enumNames(ed))
}

// enumNames lists an enum's values for an error message.
func enumNames(ed protoreflect.EnumDescriptor) string {
	vs := ed.Values()
	out := ""
	for i := range vs.Len() {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s (%d)", vs.Get(i).Name(), vs.Get(i).Number())
	}
	return out
}

// checkAsRecord refuses a payload that the service would write as a record
// (what names it, for the message) when the record would exceed the limit.
func (s *Service) checkAsRecord(rec *runlogv1.Record, what string) error {
	if n := proto.Size(rec); n > s.maxRecord {
		return &TooLargeError{Size: n, Limit: s.maxRecord, What: what}
	}
	return nil
}

// outOfFiles reports whether err is the process or the system running out
// of file descriptors.
func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
