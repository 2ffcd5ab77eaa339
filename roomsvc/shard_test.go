package roomsvc

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// shardSession is a session on a link whose gateway named it shard in its hello.
func shardSession(shard string) *session {
	l := newLink(func() {})
	l.shard.Store(&shard)
	sess, _ := l.open(1)
	return sess
}

// A token names its shard in clear, under the MAC: it resumes only on a link of that shard, and
// a token whose tag was changed is refused everywhere.
func TestShardTokens(t *testing.T) {
	h, _ := newTestHub(t, time.Minute)
	sess := shardSession("0a1b2c3d")
	a, rej := h.enterAs(pinEnter("000011"), sess)
	if rej != nil {
		t.Fatal(rej.msg)
	}
	first := (&conn{t: t, h: h, m: a, sess: sess}).one().GetJoined().ResumeToken
	if !strings.HasPrefix(first, "0a1b2c3d."+tokenPrefix) {
		t.Fatalf("token %q does not start with its shard", first)
	}
	moved := "ffffffff" + strings.TrimPrefix(first, "0a1b2c3d")
	for name, tc := range map[string]struct{ tok, shard string }{
		"other shard":   {first, "ffffffff"},
		"unsharded":     {first, ""},
		"tag changed":   {moved, "ffffffff"},
		"tag removed":   {strings.TrimPrefix(first, "0a1b2c3d."), ""},
		"tag truncated": {first[4:], "2c3d"},
	} {
		if _, rej := h.resumeWith(tc.tok, shardSession(tc.shard)); rej != errBadToken {
			t.Errorf("%s: %v, want bad token", name, rej)
		}
	}
	if _, err := h.keys.verifyToken(first, "ffffffff", time.Now()); !errors.Is(err, errTokenShard) {
		t.Errorf("other shard: %v, want %v", err, errTokenShard)
	}
	m, rej := h.resumeWith(first, shardSession("0a1b2c3d"))
	if rej != nil || m != a {
		t.Fatalf("resume on its shard: %v", rej)
	}
	if !validShardTag("0a1b2c3d") || !validShardTag("") || validShardTag("0A") || validShardTag("a.b") || validShardTag(strings.Repeat("a", 17)) {
		t.Error("validShardTag accepts the wrong tags")
	}
}
