import io.kroxylicious.proxy.KafkaProxy;
import io.kroxylicious.proxy.config.ConfigParser;
import io.kroxylicious.proxy.config.Configuration;
import io.kroxylicious.proxy.internal.config.Features;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Runs a Kroxylicious proxy from a YAML configuration file.
 *
 * <p>The benchmark's stand-in for the kroxylicious-app command line, which is not published on
 * Maven Central: this uses the same engine (kroxylicious-runtime) with its default features and
 * no filters. Usage: {@code java -cp 'libs/*:.' BenchKroxylicious proxy.yaml}
 */
public final class BenchKroxylicious {
    private BenchKroxylicious() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: BenchKroxylicious CONFIG.yaml");
            System.exit(2);
        }
        ConfigParser parser = new ConfigParser();
        Configuration config = parser.parseConfiguration(Files.readString(Path.of(args[0])));
        try (KafkaProxy proxy = new KafkaProxy(parser, config, Features.defaultFeatures())) {
            proxy.startup();
            proxy.block();
        }
    }
}
