package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/easel-io/easel/group"
)

// TestOffsetDelete drives OffsetDelete through kadm: an empty group loses
// the offsets asked for and keeps the others, a group whose member
// consumes a topic keeps that topic's offsets (GROUP_SUBSCRIBED_TO_TOPIC)
// and loses the rest, and an unknown group is GROUP_ID_NOT_FOUND.
func TestOffsetDelete(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{Group: group.Config{InitialRebalanceDelay: -1}}})
	createTopic(t, ts.addr, "a", 1, nil)
	createTopic(t, ts.addr, "b", 1, nil)
	adm := newAdmin(t, ts.addr)
	ctx := ctx10s(t)
	var os kadm.Offsets
	os.AddOffset("a", 0, 5, -1)
	os.AddOffset("b", 0, 7, -1)
	for _, g := range []string{"empty", "live"} {
		if r, err := adm.CommitOffsets(ctx, g, os); err != nil || r.Error() != nil {
			t.Fatalf("commit %s: %v %v", g, err, r.Error())
		}
	}

	r, err := adm.DeleteOffsets(ctx, "empty", kadm.TopicsSet{"a": {0: {}}})
	if err != nil || r["a"][0] != nil {
		t.Fatalf("delete from an empty group: %v %v", err, r)
	}
	fetched, err := adm.FetchOffsets(ctx, "empty")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fetched.Lookup("a", 0); ok {
		t.Fatal("a/0 still committed after OffsetDelete")
	}
	if o, ok := fetched.Lookup("b", 0); !ok || o.At != 7 {
		t.Fatalf("b/0 lost: %+v %v", o, ok)
	}

	if _, err := adm.DeleteOffsets(ctx, "no-such-group", kadm.TopicsSet{"a": {0: {}}}); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Fatalf("unknown group: %v", err)
	}

	// A member consuming b: b's offsets stay, a's go.
	cl := newClient(t, ts.addr, kgo.ConsumerGroup("live"), kgo.ConsumeTopics("b"))
	waitFor(t, "the consumer to join", func() bool {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		cl.PollRecords(pctx, 1) // drives the join; there may be nothing to read
		cancel()
		gs, err := adm.DescribeGroups(ctx, "live")
		return err == nil && gs["live"].State == "Stable"
	})
	r, err = adm.DeleteOffsets(ctx, "live", kadm.TopicsSet{"a": {0: {}}, "b": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if r["a"][0] != nil || !errors.Is(r["b"][0], kerr.GroupSubscribedToTopic) {
		t.Fatalf("delete from a live group: a %v b %v", r["a"][0], r["b"][0])
	}
	fetched, err = adm.FetchOffsets(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fetched.Lookup("a", 0); ok {
		t.Fatal("a/0 still committed in the live group")
	}
	if _, ok := fetched.Lookup("b", 0); !ok {
		t.Fatal("b/0 of the subscribed topic was deleted")
	}
}
