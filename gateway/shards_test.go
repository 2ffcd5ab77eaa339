package gateway

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

func mustShards(t *testing.T, urls ...string) []*shard {
	t.Helper()
	shards, err := parseShards(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	return shards
}

func testPIN(i int) string { return fmt.Sprintf("%06d", i) }

// placement maps n PINs to the names of their shards.
func placement(shards []*shard, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = roomShard(shards, roomv1.RoomKind_ROOM_KIND_PIN, testPIN(i)).name
	}
	return out
}

var threeShards = []string{
	"http://tuturu-roomsvc-0.tuturu-roomsvc:9101",
	"http://tuturu-roomsvc-1.tuturu-roomsvc:9101",
	"http://tuturu-roomsvc-2.tuturu-roomsvc:9101",
}

const placedPINs = 30000

// Gateways that list the same shards in any order place every room alike.
func TestRendezvousSameOnEveryGateway(t *testing.T) {
	want := placement(mustShards(t, threeShards...), placedPINs)
	reversed := slices.Clone(threeShards)
	slices.Reverse(reversed)
	for _, order := range [][]string{reversed, {threeShards[1], threeShards[2], threeShards[0]}} {
		if got := placement(mustShards(t, order...), placedPINs); !slices.Equal(got, want) {
			t.Fatalf("order %v places rooms differently", order)
		}
	}
}

// Removing a shard moves its rooms, and only its rooms.
func TestRendezvousRemovalMovesOnlyItsRooms(t *testing.T) {
	before := placement(mustShards(t, threeShards...), placedPINs)
	removed := mustShards(t, threeShards[1])[0].name
	after := placement(mustShards(t, threeShards[0], threeShards[2]), placedPINs)
	moved := 0
	for i := range before {
		switch {
		case before[i] == removed && after[i] == removed:
			t.Fatalf("PIN %s stays on the removed shard", testPIN(i))
		case before[i] == removed:
			moved++
		case after[i] != before[i]:
			t.Fatalf("PIN %s moved from %s to %s, though its shard stayed", testPIN(i), before[i], after[i])
		}
	}
	if moved == 0 {
		t.Fatal("the removed shard held no rooms")
	}
}

// Three shards take about a third of the rooms each, PINs and lobbies alike.
func TestRendezvousSpread(t *testing.T) {
	shards := mustShards(t, threeShards...)
	for _, kind := range []roomv1.RoomKind{roomv1.RoomKind_ROOM_KIND_PIN, roomv1.RoomKind_ROOM_KIND_LOBBY} {
		counts := map[string]int{}
		for i := range placedPINs {
			counts[roomShard(shards, kind, testPIN(i)).name]++
		}
		// A fair share is 10000 with a standard deviation of about 82: 5% off is far out.
		for _, s := range shards {
			if c := counts[s.name]; c < placedPINs/3*95/100 || c > placedPINs/3*105/100 {
				t.Errorf("%v: %s holds %d of %d rooms", kind, s.name, c, placedPINs)
			}
		}
	}
}

// A resume goes to the shard its token names; a token naming none goes to the first shard,
// which refuses it as it refuses any bad token.
func TestTokenShard(t *testing.T) {
	shards := mustShards(t, "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
	for _, s := range shards {
		if got := tokenShard(shards, s.tag+".v2.cGF5bG9hZA.bWFj"); got != s {
			t.Errorf("token of %s goes to %s", s.name, got.name)
		}
		resume := &roomv1.MemberRequest{Msg: &roomv1.MemberRequest_Resume{Resume: &roomv1.Resume{ResumeToken: s.tag + ".v2.x.y"}}}
		if got := requestShard(shards, resume); got != s {
			t.Errorf("resume of %s goes to %s", s.name, got.name)
		}
	}
	for _, tok := range []string{"", "v2.cGF5bG9hZA.bWFj", "00000000.v2.x.y", "garbage"} {
		if got := tokenShard(shards, tok); got != shards[0] {
			t.Errorf("%q goes to %s, want the first shard", tok, got.name)
		}
	}
	enter := &roomv1.MemberRequest{Msg: &roomv1.MemberRequest_Enter{Enter: &roomv1.Enter{Room: &roomv1.Enter_Lobby{Lobby: "default"}}}}
	if got, want := requestShard(shards, enter), roomShard(shards, roomv1.RoomKind_ROOM_KIND_LOBBY, "default"); got != want {
		t.Errorf("lobby enter goes to %s, want %s", got.name, want.name)
	}
}

func TestParseShards(t *testing.T) {
	shards := mustShards(t, "http://roomsvc:9101/")
	if len(shards) != 1 || shards[0].name != "roomsvc:9101" || shards[0].url != "http://roomsvc:9101" || len(shards[0].tag) != shardTagLen {
		t.Fatalf("one URL: %+v", shards[0])
	}
	for _, bad := range []string{"", " , ", "roomsvc:9101", "ftp://roomsvc", "http://a:1,http://a:1/"} {
		if _, err := parseShards(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// BenchmarkRoomShard is the cost of placing one join over three shards.
func BenchmarkRoomShard(b *testing.B) {
	shards, err := parseShards(strings.Join(threeShards, ","))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		roomShard(shards, roomv1.RoomKind_ROOM_KIND_PIN, testPIN(i%1000))
	}
}
