// A minimal transactional Kafka producer for the test bed (the console producer has no
// transactions). Reads "key<TAB>value" lines from stdin, sends them all in one transaction
// (acks=all, idempotent), then commits (or aborts with --abort). Exit status 0 only if every
// record was acknowledged and the transaction was committed/aborted as asked.
//
// usage: TxProducer --bootstrap HOST:PORT,... --topic T --transactional-id ID
//                   [--config client.properties] [--abort] [--batches N]
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class TxProducer {
    private TxProducer() {}

    public static void main(String[] args) throws Exception {
        String bootstrap = null;
        String topic = null;
        String txId = null;
        String config = null;
        boolean abort = false;
        int batches = 1;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--bootstrap" -> bootstrap = args[++i];
                case "--topic" -> topic = args[++i];
                case "--transactional-id" -> txId = args[++i];
                case "--config" -> config = args[++i];
                case "--abort" -> abort = true;
                case "--batches" -> batches = Integer.parseInt(args[++i]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (bootstrap == null || topic == null || txId == null) {
            throw new IllegalArgumentException("--bootstrap, --topic and --transactional-id needed");
        }
        Properties props = new Properties();
        if (config != null) {
            try (Reader r = Files.newBufferedReader(Path.of(config), StandardCharsets.UTF_8)) {
                props.load(r);
            }
        }
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txId);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");

        List<byte[][]> records = new ArrayList<>();
        try (BufferedReader in = new BufferedReader(
                new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                int tab = line.indexOf('\t');
                byte[] key = tab < 0 ? null : line.substring(0, tab).getBytes(StandardCharsets.UTF_8);
                byte[] value = line.substring(tab + 1).getBytes(StandardCharsets.UTF_8);
                records.add(new byte[][] {key, value});
            }
        }
        int perBatch = Math.max(1, (records.size() + batches - 1) / batches);
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer())) {
            producer.initTransactions();
            for (int start = 0; start < records.size(); start += perBatch) {
                producer.beginTransaction();
                List<Future<RecordMetadata>> acks = new ArrayList<>();
                for (byte[][] r : records.subList(start, Math.min(records.size(), start + perBatch))) {
                    acks.add(producer.send(new ProducerRecord<>(topic, r[0], r[1])));
                }
                producer.flush();
                for (Future<RecordMetadata> f : acks) {
                    f.get();
                }
                if (abort) {
                    producer.abortTransaction();
                } else {
                    producer.commitTransaction();
                }
            }
        }
        System.err.println((abort ? "aborted " : "committed ") + records.size() + " records");
    }
}
