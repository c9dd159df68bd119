package demo

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestIDSetIsBounded(t *testing.T) {
	s := newIDSet(3)
	for i := range 5 {
		s.add(fmt.Sprintf("cmd-%d", i))
	}
	assert.Equal(t, 3, s.len())
	assert.False(t, s.has("cmd-0"), "the oldest ids are forgotten first")
	assert.False(t, s.has("cmd-1"))
	for _, id := range []string{"cmd-2", "cmd-3", "cmd-4"} {
		assert.True(t, s.has(id), id)
	}
	s.add("cmd-4") // present already: nothing is evicted
	assert.True(t, s.has("cmd-2"))
}

func TestCommandKey(t *testing.T) {
	c := Command{Subject: "order-fulfilment/ord-1"}
	assert.Equal(t, "ord-1", c.key())
	c.CorrelationID = "ord-2"
	assert.Equal(t, "ord-2", c.key())
	c.Data.Key = "ord-3"
	assert.Equal(t, "ord-3", c.key())
}

func TestDecodeCommandReportsEveryProblem(t *testing.T) {
	_, err := DecodeCommand([]byte(`{"specversion":"1.0","datacontenttype":"text/xml","data":{}}`))
	for _, want := range []string{"id is missing", "source is missing", "type is missing",
		"datacontenttype must be application/json", "data.flow is missing", "data.checkpoint is missing", "data.key is missing"} {
		assert.ErrorContains(t, err, want)
	}
	_, err = DecodeCommand([]byte(`{`))
	assert.ErrorContains(t, err, "decode CloudEvent")
	c, err := DecodeCommand([]byte(`{"specversion":"1.0","id":"a","source":"s","type":"dev.flowwatch.unblock",
		"subject":"payment/pay-1","data":{"flow":"payment","checkpoint":"authorized","reason":{"summary":"late"}}}`))
	assert.NoError(t, err)
	assert.Equal(t, "pay-1", c.key())
	assert.JSONEq(t, `{"summary":"late"}`, string(c.Data.Reason))
}
