// Emulated Amazon MSK IAM (test only): the JAAS login module named in the broker's
// listener.name.<listener>.aws_msk_iam.sasl.jaas.config. Like Kafka's PlainLoginModule, its only
// job is to register the mechanism's SaslServerFactory when Kafka loads it; the credentials and
// region it is given as options are read by IamCallbackHandler.
package msk;

import java.security.Security;
import java.util.Map;
import javax.security.auth.Subject;
import javax.security.auth.callback.CallbackHandler;
import javax.security.auth.spi.LoginModule;

public final class IamLoginModule implements LoginModule {
    static {
        if (Security.getProvider(new IamSaslServer.ServerProvider().getName()) == null) {
            Security.addProvider(new IamSaslServer.ServerProvider());
        }
    }

    @Override
    public void initialize(Subject subject, CallbackHandler callbackHandler,
                           Map<String, ?> sharedState, Map<String, ?> options) {
    }

    @Override
    public boolean login() {
        return true;
    }

    @Override
    public boolean commit() {
        return true;
    }

    @Override
    public boolean abort() {
        return false;
    }

    @Override
    public boolean logout() {
        return true;
    }
}
