package codec_test

import (
	"errors"
	"fmt"

	"github.com/typedraft/typedraft/codec"
	"github.com/typedraft/typedraft/raft"
)

// Transfer is an application command. Explicit msgpack and json tags keep
// the stored bytes stable when a Go field is renamed.
type Transfer struct {
	From   string `msgpack:"f" json:"from"`
	To     string `msgpack:"t" json:"to"`
	Amount int    `msgpack:"a" json:"amount"`
}

// Example encodes a command with both stock codecs and decodes it back.
// raft.Config.Codec chooses the codec a node uses for its log entries
// (msgpack when nil); every node of a cluster must use the same one.
func Example() {
	cmd := Transfer{From: "alice", To: "bob", Amount: 30}
	for _, c := range []codec.Codec{codec.Msgpack(), codec.JSON()} {
		data, err := c.Marshal(cmd)
		if err != nil {
			fmt.Println(err)
			return
		}
		var back Transfer
		if err := c.Unmarshal(data, &back); err != nil {
			fmt.Println(err)
			return
		}
		if c.Name() == "json" {
			fmt.Printf("%s: %s, round trip equal: %v\n", c.Name(), data, back == cmd)
		} else {
			fmt.Printf("%s: % x, round trip equal: %v\n", c.Name(), data, back == cmd)
		}
	}
	cfg := raft.Config{ID: "n1", Codec: codec.JSON()}
	fmt.Println("config codec:", cfg.Codec.Name())
	// Output:
	// msgpack: 83 a1 66 a5 61 6c 69 63 65 a1 74 a3 62 6f 62 a1 61 1e, round trip equal: true
	// json: {"from":"alice","to":"bob","amount":30}, round trip equal: true
	// config codec: json
}

// ExampleMsgpack_invalidInput shows that bytes which are not one
// well-formed msgpack value are refused before decoding, with an error
// matching ErrInvalidMsgpack: here an array header that declares 2^32-1
// elements in a 5-byte input, which the decoder would otherwise try to
// allocate.
func ExampleMsgpack_invalidInput() {
	hostile := []byte{0xdd, 0xff, 0xff, 0xff, 0xff} // array32 of 4294967295 elements
	var v []int
	err := codec.Msgpack().Unmarshal(hostile, &v)
	fmt.Println(errors.Is(err, codec.ErrInvalidMsgpack))

	// Trailing bytes after a complete value are refused too.
	err = codec.Msgpack().Unmarshal([]byte{0x01, 0x02}, new(int))
	fmt.Println(errors.Is(err, codec.ErrInvalidMsgpack))
	// Output:
	// true
	// true
}

// ExampleCheckMsgpack checks raw bytes without decoding them, for example
// data read from an untrusted peer before it is handed to a decoder.
func ExampleCheckMsgpack() {
	ok := []byte{0x92, 0x01, 0x91, 0x02} // [1, [2]]
	fmt.Println(codec.CheckMsgpack(ok, 2))
	fmt.Println(codec.CheckMsgpack(ok, 1) != nil) // nested two deep
	fmt.Println(codec.CheckMsgpack(ok[:3], 2) != nil)
	// Output:
	// <nil>
	// true
	// true
}
