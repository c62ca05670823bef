// Command sarama_v0 is a small Kafka client built on IBM/sarama for kafka-edge's end-to-end
// tests: it produces numbered records or consumes them back, over TLS, with SASL PLAIN or SCRAM
// and, by default, SaslHandshake v0 (the handshake, then raw length-prefixed SASL tokens outside
// Kafka's request framing; SaslHandshake v1 wraps them in SaslAuthenticate requests instead).
//
//	sarama_v0 produce --bootstrap HOST:PORT --topic T --count N [--prefix P] [security flags]
//	sarama_v0 consume --bootstrap HOST:PORT --topic T --count N [security flags]
//
// Security flags: --mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 (empty: no SASL), --user U,
// --password-env VAR (the password is read from that environment variable, never from a flag,
// so it does not show in process lists), --ca-file PEM (enables TLS), --tls (TLS with the
// system roots), --sasl-handshake v0|v1, --resolve NAME=IP (repeatable: dial IP for NAME while
// the TLS server name stays NAME), --kafka-version (request versions; sarama sends no
// ApiVersions request with SaslHandshake v0), --retries (metadata and produce retries).
//
// produce sends them with a SyncProducer (acks=all), --batch records per SendMessages call,
// and prints one JSON line: {"acked": N, "partitions": {"0": {"count": .., "first": ..,
// "last": ..}, ...}, "brokers": [the broker addresses the metadata gave, sorted]}. Record i has
// key "<prefix>-k-i" and value "<prefix>-v-i".
// consume reads every partition from the oldest offset until --count records or --timeout and
// prints one JSON line per record ({"partition", "offset", "key", "value"}); it exits with 3
// when fewer records arrived. Errors go to stderr (with sarama's own log); exit 2 on failure.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

type options struct {
	bootstrap     string
	topic         string
	count         int
	prefix        string
	mechanism     string
	user          string
	passwordEnv   string
	caFile        string
	tls           bool
	handshake     string
	kafkaVersion  string
	timeout       time.Duration
	batch         int
	retries       int
	resolve       resolveMap
	clientID      string
	verboseSarama bool
}

// resolveMap maps host names to IP addresses (--resolve NAME=IP).
type resolveMap map[string]string

func (r resolveMap) String() string {
	parts := make([]string, 0, len(r))
	for k, v := range r {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (r resolveMap) Set(value string) error {
	name, ip, ok := strings.Cut(value, "=")
	if !ok || name == "" || net.ParseIP(ip) == nil {
		return fmt.Errorf("want NAME=IP, got %q", value)
	}
	r[strings.ToLower(name)] = ip
	return nil
}

// resolvingDialer dials the mapped IP for a mapped host name; sarama still uses the name for
// the TLS server name (SNI and certificate verification), as it derives it from the address.
type resolvingDialer struct {
	hosts  resolveMap
	dialer net.Dialer
}

func (d *resolvingDialer) Dial(network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip, ok := d.hosts[strings.ToLower(host)]; ok {
		addr = net.JoinHostPort(ip, port)
	}
	return d.dialer.Dial(network, addr)
}

// scramClient adapts xdg-go/scram to sarama.SCRAMClient.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = client.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }
func (c *scramClient) Done() bool                            { return c.conv.Done() }

func parseFlags(cmd string, args []string) (*options, error) {
	o := &options{resolve: resolveMap{}}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.StringVar(&o.bootstrap, "bootstrap", "", "bootstrap servers, comma separated (required)")
	fs.StringVar(&o.topic, "topic", "", "topic (required)")
	fs.IntVar(&o.count, "count", 100, "records to produce / to wait for")
	fs.StringVar(&o.prefix, "prefix", "r", "key/value prefix of produced records")
	fs.StringVar(&o.mechanism, "mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (empty: no SASL)")
	fs.StringVar(&o.user, "user", "", "SASL user name")
	fs.StringVar(&o.passwordEnv, "password-env", "KAFKA_PASSWORD", "environment variable holding the SASL password")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM CA bundle to verify the server (enables TLS)")
	fs.BoolVar(&o.tls, "tls", false, "use TLS (with the system roots unless --ca-file)")
	fs.StringVar(&o.handshake, "sasl-handshake", "v0", "SaslHandshake version: v0 (raw tokens) or v1 (SaslAuthenticate)")
	fs.StringVar(&o.kafkaVersion, "kafka-version", sarama.DefaultVersion.String(), "Kafka version sarama assumes for request versions")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "overall time limit")
	fs.IntVar(&o.batch, "batch", 50, "records per SendMessages call (produce)")
	fs.IntVar(&o.retries, "retries", 10, "metadata and produce retries")
	fs.Var(o.resolve, "resolve", "NAME=IP: dial IP for host NAME (repeatable); TLS still verifies NAME")
	fs.StringVar(&o.clientID, "client-id", "kafka-edge-sarama-v0", "client id")
	fs.BoolVar(&o.verboseSarama, "verbose", false, "also print sarama's debug log to stderr")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.bootstrap == "" || o.topic == "" {
		return nil, errors.New("--bootstrap and --topic are required")
	}
	if o.count < 0 || o.batch < 1 || o.retries < 0 {
		return nil, errors.New("--count and --retries must be >= 0, --batch >= 1")
	}
	return o, nil
}

func saramaConfig(o *options) (*sarama.Config, error) {
	c := sarama.NewConfig()
	c.ClientID = o.clientID
	version, err := sarama.ParseKafkaVersion(o.kafkaVersion)
	if err != nil {
		return nil, err
	}
	c.Version = version
	c.Net.DialTimeout = 10 * time.Second
	c.Net.ReadTimeout = 20 * time.Second
	c.Net.WriteTimeout = 10 * time.Second
	c.Metadata.Retry.Max = o.retries
	c.Metadata.Retry.Backoff = 500 * time.Millisecond
	if len(o.resolve) > 0 {
		c.Net.Proxy.Enable = true
		c.Net.Proxy.Dialer = &resolvingDialer{hosts: o.resolve, dialer: net.Dialer{
			Timeout: c.Net.DialTimeout, KeepAlive: c.Net.KeepAlive}}
	}
	if o.caFile != "" || o.tls {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.caFile != "" {
			pem, err := os.ReadFile(o.caFile)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("no certificate in %s", o.caFile)
			}
			tc.RootCAs = pool
		}
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = tc
	}
	if o.mechanism != "" {
		password, ok := os.LookupEnv(o.passwordEnv)
		if !ok || password == "" {
			return nil, fmt.Errorf("environment variable %s (the SASL password) is not set", o.passwordEnv)
		}
		c.Net.SASL.Enable = true
		c.Net.SASL.Handshake = true
		c.Net.SASL.User = o.user
		c.Net.SASL.Password = password
		switch o.handshake {
		case "v0":
			c.Net.SASL.Version = sarama.SASLHandshakeV0
			// sarama refuses an ApiVersions request before a v0 handshake (Kafka < 1.0 clients
			// sent none); request versions then come from c.Version.
			c.ApiVersionsRequest = false
		case "v1":
			c.Net.SASL.Version = sarama.SASLHandshakeV1
		default:
			return nil, fmt.Errorf("--sasl-handshake must be v0 or v1, got %q", o.handshake)
		}
		switch o.mechanism {
		case "PLAIN":
			c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case "SCRAM-SHA-256":
			c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
				return &scramClient{hash: scram.HashGeneratorFcn(sha256.New)}
			}
		case "SCRAM-SHA-512":
			c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
				return &scramClient{hash: scram.HashGeneratorFcn(sha512.New)}
			}
		default:
			return nil, fmt.Errorf("unsupported --mechanism %q", o.mechanism)
		}
	}
	return c, nil
}

type partitionAck struct {
	Count int   `json:"count"`
	First int64 `json:"first"`
	Last  int64 `json:"last"`
}

func produce(o *options, c *sarama.Config) error {
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Retry.Max = o.retries
	c.Producer.Retry.Backoff = 250 * time.Millisecond
	c.Producer.Timeout = 20 * time.Second
	client, err := sarama.NewClient(strings.Split(o.bootstrap, ","), c)
	if err != nil {
		return fmt.Errorf("new client: %w", err)
	}
	defer func() { _ = client.Close() }()
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return fmt.Errorf("new producer: %w", err)
	}
	acked := map[string]*partitionAck{}
	total := 0
	for start := 0; start < o.count; start += o.batch {
		end := min(start+o.batch, o.count)
		msgs := make([]*sarama.ProducerMessage, 0, end-start)
		for i := start; i < end; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{
				Topic: o.topic,
				Key:   sarama.StringEncoder(fmt.Sprintf("%s-k-%d", o.prefix, i)),
				Value: sarama.StringEncoder(fmt.Sprintf("%s-v-%d", o.prefix, i)),
			})
		}
		if err := producer.SendMessages(msgs); err != nil {
			_ = producer.Close()
			return fmt.Errorf("send records %d..%d: %w", start, end-1, err)
		}
		for _, m := range msgs {
			key := strconv.Itoa(int(m.Partition))
			a, ok := acked[key]
			if !ok {
				a = &partitionAck{First: m.Offset, Last: m.Offset}
				acked[key] = a
			}
			a.Count++
			a.First = min(a.First, m.Offset)
			a.Last = max(a.Last, m.Offset)
			total++
		}
	}
	if err := producer.Close(); err != nil {
		return fmt.Errorf("close producer: %w", err)
	}
	brokers := []string{}
	for _, b := range client.Brokers() {
		brokers = append(brokers, b.Addr())
	}
	sort.Strings(brokers)
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"acked": total, "partitions": acked, "brokers": brokers})
}

type record struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	Value     string `json:"value"`
}

func consume(o *options, c *sarama.Config) error {
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	client, err := sarama.NewClient(strings.Split(o.bootstrap, ","), c)
	if err != nil {
		return fmt.Errorf("new client: %w", err)
	}
	defer func() { _ = client.Close() }()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("new consumer: %w", err)
	}
	defer func() { _ = consumer.Close() }()
	partitions, err := consumer.Partitions(o.topic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", o.topic, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	records := make(chan record)
	failures := make(chan error, len(partitions))
	var wg sync.WaitGroup
	for _, p := range partitions {
		pc, err := consumer.ConsumePartition(o.topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("consume partition %d: %w", p, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { _ = pc.Close() }()
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-pc.Messages():
					select {
					case records <- record{m.Partition, m.Offset, string(m.Key), string(m.Value)}:
					case <-ctx.Done():
						return
					}
				case e := <-pc.Errors():
					log.Printf("partition %d: %v", p, e)
					select {
					case failures <- e:
					default:
					}
				}
			}
		}()
	}
	out := json.NewEncoder(os.Stdout)
	got := 0
	for got < o.count {
		select {
		case r := <-records:
			if err := out.Encode(r); err != nil {
				return err
			}
			got++
		case <-ctx.Done():
			cancel()
			wg.Wait()
			return &shortError{got: got, want: o.count}
		}
	}
	cancel()
	wg.Wait()
	return nil
}

type shortError struct{ got, want int }

func (e *shortError) Error() string {
	return fmt.Sprintf("consumed %d of %d records before the time-out", e.got, e.want)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: sarama_v0 produce|consume --bootstrap HOST:PORT --topic T --count N [flags]; -h for flags")
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("sarama_v0: ")
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd := os.Args[1]
	if cmd != "produce" && cmd != "consume" {
		usage()
		os.Exit(2)
	}
	o, err := parseFlags(cmd, os.Args[2:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		log.Print(err)
		os.Exit(2)
	}
	sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
	if o.verboseSarama {
		sarama.DebugLogger = sarama.Logger
	}
	c, err := saramaConfig(o)
	if err != nil {
		log.Print(err)
		os.Exit(2)
	}
	// A hard limit for both commands: sarama's retries must not outlive the caller's patience.
	watchdog := time.AfterFunc(o.timeout+5*time.Second, func() {
		log.Printf("%s: no result after %s, giving up", cmd, o.timeout)
		os.Exit(2)
	})
	defer watchdog.Stop()
	if cmd == "produce" {
		err = produce(o, c)
	} else {
		err = consume(o, c)
	}
	if err != nil {
		log.Printf("%s: %v", cmd, err)
		var short *shortError
		if errors.As(err, &short) {
			os.Exit(3)
		}
		os.Exit(2)
	}
}
