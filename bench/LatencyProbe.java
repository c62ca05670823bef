// Produce latency at a fixed rate, in microseconds (make bench's latency step).
//
// Apache Kafka's ProducerPerformance records latencies in whole milliseconds, too coarse for a
// target of "at most 1 ms added": this probe sends 1 KiB records with the same Java client and
// settings (acks=all, the client properties file given) at a fixed rate and times each send()
// to its acknowledgement with System.nanoTime(). The first --warmup records are left out.
// It prints one JSON line: records, achieved rate, p50/p99/p99.9/max in ms (3 decimals), errors.
//
// Run as a single-file source program:
//   java -cp 'libs/*' bench/LatencyProbe.java --bootstrap-server H:P --topic T \
//        --num-records N --warmup-records W --rate R --record-size 1024 [--command-config F]

import java.io.FileInputStream;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class LatencyProbe {
    public static void main(String[] argv) throws Exception {
        String bootstrap = null, topic = null, config = null;
        int records = 0, warmup = 0, size = 1024;
        double rate = 0;
        for (int i = 0; i + 1 < argv.length; i += 2) {
            String v = argv[i + 1];
            switch (argv[i]) {
                case "--bootstrap-server": bootstrap = v; break;
                case "--topic": topic = v; break;
                case "--command-config": config = v; break;
                case "--num-records": records = Integer.parseInt(v); break;
                case "--warmup-records": warmup = Integer.parseInt(v); break;
                case "--record-size": size = Integer.parseInt(v); break;
                case "--rate": rate = Double.parseDouble(v); break;
                default: throw new IllegalArgumentException("unknown option " + argv[i]);
            }
        }
        if (bootstrap == null || topic == null || records <= warmup || rate <= 0) {
            throw new IllegalArgumentException(
                "need --bootstrap-server, --topic, --rate > 0 and --num-records > --warmup-records");
        }
        Properties props = new Properties();
        if (config != null) {
            try (FileInputStream in = new FileInputStream(config)) {
                props.load(in);
            }
        }
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.CLIENT_ID_CONFIG, "latency-probe");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());

        byte[] payload = new byte[size];
        Arrays.fill(payload, (byte) 'x');
        final long[] micros = new long[records];
        final AtomicLong errors = new AtomicLong();
        final AtomicLong firstError = new AtomicLong(-1);
        final String[] firstMessage = new String[1];
        long intervalNanos = (long) (1e9 / rate);
        long measuredStart = 0;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            long start = System.nanoTime();
            for (int i = 0; i < records; i++) {
                long due = start + i * intervalNanos;
                long now = System.nanoTime();
                if (now < due) {
                    LockSupport.parkNanos(due - now);
                }
                if (i == warmup) {
                    measuredStart = System.nanoTime();
                }
                final int index = i;
                final long sent = System.nanoTime();
                producer.send(new ProducerRecord<>(topic, payload), (meta, exc) -> {
                    micros[index] = (System.nanoTime() - sent) / 1000;
                    if (exc != null && errors.incrementAndGet() == 1) {
                        firstError.set(index);
                        firstMessage[0] = exc.toString();
                    }
                });
            }
            producer.flush();
        }
        double elapsed = (System.nanoTime() - measuredStart) / 1e9;
        long[] measured = Arrays.copyOfRange(micros, warmup, records);
        Arrays.sort(measured);
        int n = measured.length;
        System.out.printf(
            "{\"records\": %d, \"rate\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
                + "\"p999_ms\": %.3f, \"max_ms\": %.3f, \"errors\": %d, \"first_error\": %s}%n",
            n, n / elapsed, pct(measured, 0.50), pct(measured, 0.99), pct(measured, 0.999),
            measured[n - 1] / 1000.0, errors.get(),
            firstMessage[0] == null ? "null" : "\"" + firstMessage[0].replace("\"", "'") + "\"");
    }

    private static double pct(long[] sorted, double q) {
        int i = (int) Math.ceil(q * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, i))] / 1000.0;
    }
}
