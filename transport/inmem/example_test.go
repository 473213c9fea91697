package inmem_test

import (
	"fmt"
	"io"

	"github.com/typedraft/typedraft/raft"
	"github.com/typedraft/typedraft/transport/inmem"
)

// chanHandler is a raft.Handler that forwards what it receives to channels.
type chanHandler struct {
	msgs        chan raft.Message
	unreachable chan raft.NodeID
}

func newChanHandler() chanHandler {
	return chanHandler{msgs: make(chan raft.Message, 8), unreachable: make(chan raft.NodeID, 8)}
}

func (h chanHandler) HandleMessage(m raft.Message) { h.msgs <- m }
func (h chanHandler) HandleSnapshot(m raft.Message, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
func (h chanHandler) ReportUnreachable(id raft.NodeID) { h.unreachable <- id }

func Example() {
	net := inmem.NewNetwork(1) // the seed drives random drops and delays
	n1, n2 := net.Join("n1"), net.Join("n2")
	defer n1.Close()
	defer n2.Close()
	h1, h2 := newChanHandler(), newChanHandler()
	n1.Register(h1)
	n2.Register(h2)

	hb := raft.Message{Type: raft.MsgHeartbeat, From: "n1", To: "n2", Term: 1}
	n1.Send(raft.Peer{ID: "n2"}, []raft.Message{hb})
	fmt.Println("n2 got:", <-h2.msgs)

	// Cut n1 off: the next heartbeat is dropped and n1 is told.
	net.Isolate("n1")
	n1.Send(raft.Peer{ID: "n2"}, []raft.Message{hb})
	fmt.Println("unreachable:", <-h1.unreachable)
	fmt.Printf("n1->n2: %+v\n", net.Stats("n1", "n2"))

	net.Heal()
	n1.Send(raft.Peer{ID: "n2"}, []raft.Message{hb})
	fmt.Println("n2 got:", <-h2.msgs)
	// Output:
	// n2 got: Heartbeat n1->n2 t1 i0 lt0 c0 n0 rej=false
	// unreachable: n2
	// n1->n2: {Messages:1 Bytes:64 Dropped:1}
	// n2 got: Heartbeat n1->n2 t1 i0 lt0 c0 n0 rej=false
}
