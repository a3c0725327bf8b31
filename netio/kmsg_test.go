package netio

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestKmsgRequestHeaders sends requests encoded by kmsg behind hand-built
// headers and checks the response header of each: a tag byte exactly when
// the request was flexible, never for ApiVersions.
func TestKmsgRequestHeaders(t *testing.T) {
	h := newTestHandler()
	h.apiMax = map[int16]int16{0: 9, 3: 12, 18: 3}
	s, _ := startServer(t, Config{}, h)
	c := dial(t, s)

	type tc struct {
		req     kmsg.Request
		wantTag bool
	}
	var cases []tc
	for _, v := range []int16{0, 1, 4, 8, 9, 12} {
		r := kmsg.NewPtrMetadataRequest()
		r.SetVersion(v)
		topic := "t" + strconv.Itoa(int(v))
		r.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
		cases = append(cases, tc{r, v >= 9})
	}
	for _, v := range []int16{0, 1, 2, 3} {
		r := kmsg.NewPtrApiVersionsRequest()
		r.SetVersion(v)
		r.ClientSoftwareName, r.ClientSoftwareVersion = "netio-test", "1.0"
		cases = append(cases, tc{r, false})
	}
	for i, tc := range cases {
		name := "key" + strconv.Itoa(int(tc.req.Key())) + "v" + strconv.Itoa(int(tc.req.GetVersion()))
		t.Run(name, func(t *testing.T) {
			hdr := reqHeader{key: tc.req.Key(), version: tc.req.GetVersion(), corr: int32(100 + i),
				clientID: strp("kmsg"), flexible: tc.req.IsFlexible()}
			if hdr.flexible {
				hdr.tags = [][]byte{[]byte("ignored")}
			}
			got := roundTrip(t, c, appendFrame(nil, hdr, tc.req.AppendTo(nil)))
			if tc.wantTag {
				if len(got) == 0 || got[0] != 0 {
					t.Fatalf("flexible response without tag byte")
				}
				got = got[1:]
			}
			resp := tc.req.ResponseKind()
			if err := resp.ReadFrom(got); err != nil {
				t.Fatalf("response body: %v", err)
			}
			// Re-encoding must give back exactly the body: proves the header
			// had no more and no fewer bytes than expected.
			if again := resp.AppendTo(nil); !bytes.Equal(again, got) {
				t.Fatalf("body % x\nre-encoded % x", got, again)
			}
			switch r := resp.(type) {
			case *kmsg.MetadataResponse:
				if len(r.Topics) != 1 || *r.Topics[0].Topic != "t"+strconv.Itoa(int(r.Version)) {
					t.Fatalf("topics %+v", r.Topics)
				}
			case *kmsg.ApiVersionsResponse:
				if len(r.ApiKeys) != 3 || r.ApiKeys[1].ApiKey != 3 || r.ApiKeys[1].MaxVersion != 12 {
					t.Fatalf("api keys %+v", r.ApiKeys)
				}
			}
		})
	}
	h.waitDone(t)
}

// TestFranzGoClient lets a real client negotiate versions and issue a
// flexible Metadata request.
func TestFranzGoClient(t *testing.T) {
	h := newTestHandler()
	h.apiMax = map[int16]int16{0: 9, 3: 12, 18: 3}
	s, _ := startServer(t, Config{}, h)
	host, port, _ := net.SplitHostPort(s.Addr().String())
	p, _ := strconv.Atoi(port)
	h.brokerHost, h.brokerPort = host, int32(p)

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()), kgo.MetadataMinAge(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	topic := "orders"
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	kresp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kresp.(*kmsg.MetadataResponse)
	if resp.Version != 12 {
		t.Errorf("client used Metadata v%d, want v12", resp.Version)
	}
	if len(resp.Topics) != 1 || *resp.Topics[0].Topic != "orders" || resp.Topics[0].ErrorCode != 3 {
		t.Fatalf("topics %+v", resp.Topics)
	}
	if len(resp.Brokers) != 1 || resp.Brokers[0].Port != int32(p) {
		t.Fatalf("brokers %+v", resp.Brokers)
	}
}
