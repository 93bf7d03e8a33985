package sender_test

import (
	"testing"

	"github.com/runlog/runlog/sender"
)

func TestDialTargetsOneConnectionAHub(t *testing.T) {
	targets, closeAll, err := sender.DialTargets([]string{
		"grpc://127.0.0.1:7070", "grpc://127.0.0.1:7070/", "grpc://127.0.0.1:7071",
	}, sender.HubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	if len(targets) != 2 || targets[0].URL == targets[1].URL {
		t.Fatalf("targets %+v, want one a hub", targets)
	}
	if _, _, err := sender.DialTargets([]string{"grpc://127.0.0.1:7070", "http://x"}, sender.HubOptions{}); err == nil {
		t.Fatal("a bad URL dialed")
	}
}
