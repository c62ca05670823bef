// Emulated Amazon MSK IAM (test only): the broker side of the AWS_MSK_IAM SASL mechanism, as
// aws-msk-iam-auth's client speaks it: the client sends one JSON object (the signed query
// parameters of "GET https://<host>/?Action=kafka-cluster:Connect", lower-cased keys, plus
// "host", "version" 2020_10_22 and "user-agent"); the server answers a JSON object with the
// version and a request id, or fails the authentication. The signature is checked by the
// server callback handler (IamCallbackHandler), which holds the credentials; the principal is
// the access key id. Registered like Kafka's own PLAIN server: IamLoginModule's static
// initialiser adds ServerProvider, whose factory javax.security.sasl finds by mechanism name.
package msk;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.Provider;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.CallbackHandler;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.sasl.SaslException;
import javax.security.sasl.SaslServer;
import javax.security.sasl.SaslServerFactory;
import org.apache.kafka.common.errors.SaslAuthenticationException;

public final class IamSaslServer implements SaslServer {
    public static final String MECHANISM = "AWS_MSK_IAM";
    static final String VERSION = "2020_10_22";
    // payload key (lower case, as sent) -> the query parameter name that was signed
    private static final Map<String, String> SIGNED = Map.of(
            "action", "Action",
            "x-amz-algorithm", "X-Amz-Algorithm",
            "x-amz-credential", "X-Amz-Credential",
            "x-amz-date", "X-Amz-Date",
            "x-amz-expires", "X-Amz-Expires",
            "x-amz-security-token", "X-Amz-Security-Token",
            "x-amz-signedheaders", "X-Amz-SignedHeaders",
            "x-amz-signature", "X-Amz-Signature");
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What the server asks its callback handler: verify these signed parameters for host. */
    public static final class VerifyCallback implements Callback {
        final Map<String, String> query;
        final String host;
        String accessKeyId;  // set when verified
        String refused;  // set when not

        VerifyCallback(Map<String, String> query, String host) {
            this.query = query;
            this.host = host;
        }
    }

    private final CallbackHandler handler;
    private String principal;

    IamSaslServer(CallbackHandler handler) {
        this.handler = handler;
    }

    @Override
    public byte[] evaluateResponse(byte[] response) throws SaslException {
        if (principal != null) {
            throw new IllegalStateException("authentication already complete");
        }
        Map<String, String> payload = parse(response);
        if (!VERSION.equals(payload.get("version"))) {
            throw new SaslAuthenticationException("Access denied: unsupported payload version");
        }
        String host = payload.get("host");
        if (host == null || host.isEmpty()) {
            throw new SaslAuthenticationException("Access denied: no host in the payload");
        }
        Map<String, String> query = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : SIGNED.entrySet()) {
            String value = payload.get(e.getKey());
            if (value != null) {
                query.put(e.getValue(), value);
            }
        }
        VerifyCallback verify = new VerifyCallback(query, host);
        try {
            handler.handle(new Callback[] {verify});
        } catch (IOException | UnsupportedCallbackException e) {
            throw new SaslException("cannot verify the payload: " + e, e);
        }
        if (verify.accessKeyId == null) {
            throw new SaslAuthenticationException("Access denied: " + verify.refused);
        }
        principal = verify.accessKeyId;
        String answer = "{\"version\":\"" + VERSION + "\",\"request-id\":\"" + UUID.randomUUID() + "\"}";
        return answer.getBytes(StandardCharsets.UTF_8);
    }

    private static Map<String, String> parse(byte[] response) {
        Map<String, String> out = new LinkedHashMap<>();
        try {
            JsonNode root = JSON.readTree(response);
            if (root == null || !root.isObject()) {
                throw new SaslAuthenticationException("Access denied: the payload is not a JSON object");
            }
            for (Map.Entry<String, JsonNode> field : root.properties()) {
                if (!field.getValue().isTextual()) {
                    throw new SaslAuthenticationException("Access denied: " + field.getKey() + " is not a string");
                }
                out.put(field.getKey(), field.getValue().asText());
            }
        } catch (IOException e) {
            throw new SaslAuthenticationException("Access denied: the payload is not JSON");
        }
        return out;
    }

    @Override
    public String getMechanismName() {
        return MECHANISM;
    }

    @Override
    public boolean isComplete() {
        return principal != null;
    }

    @Override
    public String getAuthorizationID() {
        if (principal == null) {
            throw new IllegalStateException("authentication not complete");
        }
        return principal;
    }

    @Override
    public byte[] unwrap(byte[] incoming, int offset, int len) {
        throw new IllegalStateException("no security layer");
    }

    @Override
    public byte[] wrap(byte[] outgoing, int offset, int len) {
        throw new IllegalStateException("no security layer");
    }

    @Override
    public Object getNegotiatedProperty(String name) {
        return null;
    }

    @Override
    public void dispose() {
    }

    /** Makes AWS_MSK_IAM servers for javax.security.sasl.Sasl.createSaslServer. */
    public static final class Factory implements SaslServerFactory {
        @Override
        public SaslServer createSaslServer(String mechanism, String protocol, String serverName,
                                           Map<String, ?> props, CallbackHandler cbh) {
            return MECHANISM.equals(mechanism) ? new IamSaslServer(cbh) : null;
        }

        @Override
        public String[] getMechanismNames(Map<String, ?> props) {
            return new String[] {MECHANISM};
        }
    }

    /** The security provider that names the factory (added by IamLoginModule). */
    public static final class ServerProvider extends Provider {
        private static final long serialVersionUID = 1L;

        public ServerProvider() {
            super("Emulated MSK IAM SASL server (test only)", "1.0", "AWS_MSK_IAM SaslServerFactory");
            put("SaslServerFactory." + MECHANISM, Factory.class.getName());
        }
    }
}
