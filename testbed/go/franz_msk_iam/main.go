// Command franz_msk_iam is a small Kafka client built on twmb/franz-go for kafka-edge's
// emulated-MSK tests: over TLS with the AWS_MSK_IAM SASL mechanism of franz-go's pkg/sasl/aws
// (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN; franz-go
// takes the region from the broker's host name or, failing that, from AWS_REGION), it produces
// --count numbered records to --topic, then consumes them back in consumer group --group.
//
//	franz_msk_iam --bootstrap HOST:PORT --topic T --count N --group G --ca-file PEM
//
// It prints one JSON line: {"produced": N, "consumed": N, "partitions": {"0": count, ...}}
// (the partitions the records were acknowledged on). Record i has key "k-i" and value "v-i".
// franz-go's warnings go to stderr (a refused authentication is retried until --timeout; the
// broker's reason is in its log lines). Exit 2 on an error, 3 when fewer records came back.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/aws"
)

func main() {
	bootstrap := flag.String("bootstrap", "", "HOST:PORT")
	topic := flag.String("topic", "", "topic")
	count := flag.Int("count", 100, "records to produce and consume")
	group := flag.String("group", "", "consumer group")
	caFile := flag.String("ca-file", "", "CA certificate (PEM)")
	timeout := flag.Duration("timeout", 90*time.Second, "time for the whole run")
	flag.Parse()
	if err := run(*bootstrap, *topic, *count, *group, *caFile, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "franz_msk_iam:", err)
		var short shortRead
		if errors.As(err, &short) {
			os.Exit(3)
		}
		os.Exit(2)
	}
}

type shortRead struct{ got, want int }

func (s shortRead) Error() string { return fmt.Sprintf("consumed %d of %d records", s.got, s.want) }

func run(bootstrap, topic string, count int, group, caFile string, timeout time.Duration) error {
	if bootstrap == "" || topic == "" || group == "" || caFile == "" {
		return errors.New("--bootstrap, --topic, --group and --ca-file are required")
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("no certificate in %s", caFile)
	}
	auth := aws.Auth{
		AccessKey:    os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey:    os.Getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken: os.Getenv("AWS_SESSION_TOKEN"),
	}
	common := []kgo.Opt{
		kgo.SeedBrokers(bootstrap),
		kgo.DialTLSConfig(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}),
		kgo.SASL(auth.AsManagedStreamingIAMMechanism()),
		// warnings and errors to stderr: a refused authentication is retried until the
		// deadline, and its reason is only in the log
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelWarn, nil)),
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	producer, err := kgo.NewClient(append(common, kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))...)
	if err != nil {
		return err
	}
	partitions := map[string]int{}
	for i := 0; i < count; i++ {
		rec := &kgo.Record{Topic: topic, Key: []byte("k-" + strconv.Itoa(i)),
			Value: []byte("v-" + strconv.Itoa(i))}
		got, err := producer.ProduceSync(ctx, rec).First()
		if err != nil {
			producer.Close()
			return fmt.Errorf("produce: %w", err)
		}
		partitions[strconv.Itoa(int(got.Partition))]++
	}
	producer.Close()

	consumer, err := kgo.NewClient(append(common, kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return err
	}
	defer consumer.Close()
	seen := map[string]bool{}
	for len(seen) < count {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return shortRead{len(seen), count}
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("fetch: %v", errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == "v-"+string(r.Key[2:]) {
				seen[string(r.Key)] = true
			}
		})
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	out, _ := json.Marshal(map[string]any{"produced": count, "consumed": len(seen),
		"partitions": partitions})
	fmt.Println(string(out))
	return nil
}
