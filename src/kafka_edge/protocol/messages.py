# generated from Apache Kafka 4.4.0 message definitions by scripts/gen_messages.py; do not edit
"""Kafka message definitions used by kafka-edge (see schema.py for the shapes).

API_KEYS: every request type a broker listener accepts (Kafka's `listeners` includes
"broker"), with the request's validVersions and the first flexible version of the
request and of the response.

*_RESPONSE: the responses the proxy decodes, each described once; a field exists in
`versions`, may be null in `nullable`, and lives in the tagged-field section in `tagged`.
Version ranges are (first, last) inclusive, last None meaning open-ended.
"""

from __future__ import annotations

from kafka_edge.protocol.schema import ApiSpec, Array, Field, Message, Struct

KAFKA_VERSION = "4.4.0"

# key: ApiSpec(key, name, min_version, max_version, request_flexible_from,
#              response_flexible_from)
API_KEYS: dict[int, ApiSpec] = {
    0: ApiSpec(0, "Produce", 3, 13, 9, 9),
    1: ApiSpec(1, "Fetch", 4, 18, 12, 12),
    2: ApiSpec(2, "ListOffsets", 1, 11, 6, 6),
    3: ApiSpec(3, "Metadata", 0, 13, 9, 9),
    8: ApiSpec(8, "OffsetCommit", 2, 10, 8, 8),
    9: ApiSpec(9, "OffsetFetch", 1, 10, 6, 6),
    10: ApiSpec(10, "FindCoordinator", 0, 6, 3, 3),
    11: ApiSpec(11, "JoinGroup", 0, 9, 6, 6),
    12: ApiSpec(12, "Heartbeat", 0, 4, 4, 4),
    13: ApiSpec(13, "LeaveGroup", 0, 5, 4, 4),
    14: ApiSpec(14, "SyncGroup", 0, 5, 4, 4),
    15: ApiSpec(15, "DescribeGroups", 0, 6, 5, 5),
    16: ApiSpec(16, "ListGroups", 0, 5, 3, 3),
    17: ApiSpec(17, "SaslHandshake", 0, 1, None, None),
    18: ApiSpec(18, "ApiVersions", 0, 5, 3, 3),
    19: ApiSpec(19, "CreateTopics", 2, 7, 5, 5),
    20: ApiSpec(20, "DeleteTopics", 1, 6, 4, 4),
    21: ApiSpec(21, "DeleteRecords", 0, 2, 2, 2),
    22: ApiSpec(22, "InitProducerId", 0, 6, 2, 2),
    23: ApiSpec(23, "OffsetForLeaderEpoch", 2, 4, 4, 4),
    24: ApiSpec(24, "AddPartitionsToTxn", 0, 5, 3, 3),
    25: ApiSpec(25, "AddOffsetsToTxn", 0, 4, 3, 3),
    26: ApiSpec(26, "EndTxn", 0, 5, 3, 3),
    27: ApiSpec(27, "WriteTxnMarkers", 1, 2, 1, 1),
    28: ApiSpec(28, "TxnOffsetCommit", 0, 6, 3, 3),
    29: ApiSpec(29, "DescribeAcls", 1, 3, 2, 2),
    30: ApiSpec(30, "CreateAcls", 1, 3, 2, 2),
    31: ApiSpec(31, "DeleteAcls", 1, 3, 2, 2),
    32: ApiSpec(32, "DescribeConfigs", 1, 4, 4, 4),
    33: ApiSpec(33, "AlterConfigs", 0, 2, 2, 2),
    34: ApiSpec(34, "AlterReplicaLogDirs", 1, 2, 2, 2),
    35: ApiSpec(35, "DescribeLogDirs", 1, 5, 2, 2),
    36: ApiSpec(36, "SaslAuthenticate", 0, 2, 2, 2),
    37: ApiSpec(37, "CreatePartitions", 0, 3, 2, 2),
    38: ApiSpec(38, "CreateDelegationToken", 1, 3, 2, 2),
    39: ApiSpec(39, "RenewDelegationToken", 1, 2, 2, 2),
    40: ApiSpec(40, "ExpireDelegationToken", 1, 2, 2, 2),
    41: ApiSpec(41, "DescribeDelegationToken", 1, 3, 2, 2),
    42: ApiSpec(42, "DeleteGroups", 0, 3, 2, 2),
    43: ApiSpec(43, "ElectLeaders", 0, 2, 2, 2),
    44: ApiSpec(44, "IncrementalAlterConfigs", 0, 1, 1, 1),
    45: ApiSpec(45, "AlterPartitionReassignments", 0, 1, 0, 0),
    46: ApiSpec(46, "ListPartitionReassignments", 0, 0, 0, 0),
    47: ApiSpec(47, "OffsetDelete", 0, 0, None, None),
    48: ApiSpec(48, "DescribeClientQuotas", 0, 1, 1, 1),
    49: ApiSpec(49, "AlterClientQuotas", 0, 1, 1, 1),
    50: ApiSpec(50, "DescribeUserScramCredentials", 0, 0, 0, 0),
    51: ApiSpec(51, "AlterUserScramCredentials", 0, 0, 0, 0),
    55: ApiSpec(55, "DescribeQuorum", 0, 2, 0, 0),
    57: ApiSpec(57, "UpdateFeatures", 0, 2, 0, 0),
    60: ApiSpec(60, "DescribeCluster", 0, 2, 0, 0),
    61: ApiSpec(61, "DescribeProducers", 0, 0, 0, 0),
    64: ApiSpec(64, "UnregisterBroker", 0, 0, 0, 0),
    65: ApiSpec(65, "DescribeTransactions", 0, 0, 0, 0),
    66: ApiSpec(66, "ListTransactions", 0, 2, 0, 0),
    68: ApiSpec(68, "ConsumerGroupHeartbeat", 0, 1, 0, 0),
    69: ApiSpec(69, "ConsumerGroupDescribe", 0, 1, 0, 0),
    71: ApiSpec(71, "GetTelemetrySubscriptions", 0, 0, 0, 0),
    72: ApiSpec(72, "PushTelemetry", 0, 0, 0, 0),
    74: ApiSpec(74, "ListConfigResources", 0, 1, 0, 0),
    75: ApiSpec(75, "DescribeTopicPartitions", 0, 0, 0, 0),
    76: ApiSpec(76, "ShareGroupHeartbeat", 1, 1, 0, 0),
    77: ApiSpec(77, "ShareGroupDescribe", 1, 1, 0, 0),
    78: ApiSpec(78, "ShareFetch", 1, 2, 0, 0),
    79: ApiSpec(79, "ShareAcknowledge", 1, 2, 0, 0),
    80: ApiSpec(80, "AddRaftVoter", 0, 1, 0, 0),
    81: ApiSpec(81, "RemoveRaftVoter", 0, 0, 0, 0),
    83: ApiSpec(83, "InitializeShareGroupState", 0, 0, 0, 0),
    84: ApiSpec(84, "ReadShareGroupState", 0, 0, 0, 0),
    85: ApiSpec(85, "WriteShareGroupState", 0, 1, 0, 0),
    86: ApiSpec(86, "DeleteShareGroupState", 0, 0, 0, 0),
    87: ApiSpec(87, "ReadShareGroupStateSummary", 0, 1, 0, 0),
    88: ApiSpec(88, "StreamsGroupHeartbeat", 0, 1, 0, 0),
    89: ApiSpec(89, "StreamsGroupDescribe", 0, 1, 0, 0),
    90: ApiSpec(90, "DescribeShareGroupOffsets", 0, 1, 0, 0),
    91: ApiSpec(91, "AlterShareGroupOffsets", 0, 0, 0, 0),
    92: ApiSpec(92, "DeleteShareGroupOffsets", 0, 0, 0, 0),
    93: ApiSpec(93, "StreamsGroupTopologyDescriptionUpdate", 0, 0, 0, 0),
    94: ApiSpec(94, "UnregisterController", 0, 0, 0, 0),
}


# ApiVersionsResponse (API key 18)
_API_VERSIONS_API_VERSION = Struct("ApiVersion", (
    Field("ApiKey", "int16", (0, None)),
    Field("MinVersion", "int16", (0, None)),
    Field("MaxVersion", "int16", (0, None)),
))

_API_VERSIONS_SUPPORTED_FEATURE_KEY = Struct("SupportedFeatureKey", (
    Field("Name", "string", (3, None)),
    Field("MinVersion", "int16", (3, None)),
    Field("MaxVersion", "int16", (3, None)),
))

_API_VERSIONS_FINALIZED_FEATURE_KEY = Struct("FinalizedFeatureKey", (
    Field("Name", "string", (3, None)),
    Field("MaxVersionLevel", "int16", (3, None)),
    Field("MinVersionLevel", "int16", (3, None)),
))

_API_VERSIONS_RESPONSE = Struct("ApiVersionsResponse", (
    Field("ErrorCode", "int16", (0, None)),
    Field("ApiKeys", Array(_API_VERSIONS_API_VERSION), (0, None)),
    Field("ThrottleTimeMs", "int32", (1, None)),
    Field(
        "SupportedFeatures", Array(_API_VERSIONS_SUPPORTED_FEATURE_KEY), (3, None),
        tag=0, tagged=(3, None),
    ),
    Field("FinalizedFeaturesEpoch", "int64", (3, None), tag=1, tagged=(3, None)),
    Field(
        "FinalizedFeatures", Array(_API_VERSIONS_FINALIZED_FEATURE_KEY), (3, None),
        tag=2, tagged=(3, None),
    ),
    Field("ZkMigrationReady", "bool", (3, None), tag=3, tagged=(3, None)),
))

API_VERSIONS_RESPONSE = Message(
    api_key=18, valid=(0, 5), flexible_from=3, body=_API_VERSIONS_RESPONSE,
)


# MetadataResponse (API key 3)
_METADATA_RESPONSE_BROKER = Struct("MetadataResponseBroker", (
    Field("NodeId", "int32", (0, None)),
    Field("Host", "string", (0, None)),
    Field("Port", "int32", (0, None)),
    Field("Rack", "string", (1, None), nullable=(1, None)),
))

_METADATA_RESPONSE_PARTITION = Struct("MetadataResponsePartition", (
    Field("ErrorCode", "int16", (0, None)),
    Field("PartitionIndex", "int32", (0, None)),
    Field("LeaderId", "int32", (0, None)),
    Field("LeaderEpoch", "int32", (7, None)),
    Field("ReplicaNodes", Array("int32"), (0, None)),
    Field("IsrNodes", Array("int32"), (0, None)),
    Field("OfflineReplicas", Array("int32"), (5, None)),
))

_METADATA_RESPONSE_TOPIC = Struct("MetadataResponseTopic", (
    Field("ErrorCode", "int16", (0, None)),
    Field("Name", "string", (0, None), nullable=(12, None)),
    Field("TopicId", "uuid", (10, None)),
    Field("IsInternal", "bool", (1, None)),
    Field("Partitions", Array(_METADATA_RESPONSE_PARTITION), (0, None)),
    Field("TopicAuthorizedOperations", "int32", (8, None)),
))

_METADATA_RESPONSE = Struct("MetadataResponse", (
    Field("ThrottleTimeMs", "int32", (3, None)),
    Field("Brokers", Array(_METADATA_RESPONSE_BROKER), (0, None)),
    Field("ClusterId", "string", (2, None), nullable=(2, None)),
    Field("ControllerId", "int32", (1, None)),
    Field("Topics", Array(_METADATA_RESPONSE_TOPIC), (0, None)),
    Field("ClusterAuthorizedOperations", "int32", (8, 10)),
    Field("ErrorCode", "int16", (13, None)),
))

METADATA_RESPONSE = Message(
    api_key=3, valid=(0, 13), flexible_from=9, body=_METADATA_RESPONSE,
)


# FindCoordinatorResponse (API key 10)
_FIND_COORDINATOR_COORDINATOR = Struct("Coordinator", (
    Field("Key", "string", (4, None)),
    Field("NodeId", "int32", (4, None)),
    Field("Host", "string", (4, None)),
    Field("Port", "int32", (4, None)),
    Field("ErrorCode", "int16", (4, None)),
    Field("ErrorMessage", "string", (4, None), nullable=(4, None)),
))

_FIND_COORDINATOR_RESPONSE = Struct("FindCoordinatorResponse", (
    Field("ThrottleTimeMs", "int32", (1, None)),
    Field("ErrorCode", "int16", (0, 3)),
    Field("ErrorMessage", "string", (1, 3), nullable=(1, 3)),
    Field("NodeId", "int32", (0, 3)),
    Field("Host", "string", (0, 3)),
    Field("Port", "int32", (0, 3)),
    Field("Coordinators", Array(_FIND_COORDINATOR_COORDINATOR), (4, None)),
))

FIND_COORDINATOR_RESPONSE = Message(
    api_key=10, valid=(0, 6), flexible_from=3, body=_FIND_COORDINATOR_RESPONSE,
)


# DescribeClusterResponse (API key 60)
_DESCRIBE_CLUSTER_BROKER = Struct("DescribeClusterBroker", (
    Field("BrokerId", "int32", (0, None)),
    Field("Host", "string", (0, None)),
    Field("Port", "int32", (0, None)),
    Field("Rack", "string", (0, None), nullable=(0, None)),
    Field("IsFenced", "bool", (2, None)),
))

_DESCRIBE_CLUSTER_RESPONSE = Struct("DescribeClusterResponse", (
    Field("ThrottleTimeMs", "int32", (0, None)),
    Field("ErrorCode", "int16", (0, None)),
    Field("ErrorMessage", "string", (0, None), nullable=(0, None)),
    Field("EndpointType", "int8", (1, None)),
    Field("ClusterId", "string", (0, None)),
    Field("ControllerId", "int32", (0, None)),
    Field("Brokers", Array(_DESCRIBE_CLUSTER_BROKER), (0, None)),
    Field("ClusterAuthorizedOperations", "int32", (0, None)),
))

DESCRIBE_CLUSTER_RESPONSE = Message(
    api_key=60, valid=(0, 2), flexible_from=0, body=_DESCRIBE_CLUSTER_RESPONSE,
)


# ProduceResponse (API key 0)
_PRODUCE_BATCH_INDEX_AND_ERROR_MESSAGE = Struct("BatchIndexAndErrorMessage", (
    Field("BatchIndex", "int32", (8, None)),
    Field("BatchIndexErrorMessage", "string", (8, None), nullable=(8, None)),
))

_PRODUCE_LEADER_ID_AND_EPOCH = Struct("LeaderIdAndEpoch", (
    Field("LeaderId", "int32", (10, None)),
    Field("LeaderEpoch", "int32", (10, None)),
))

_PRODUCE_PARTITION_PRODUCE_RESPONSE = Struct("PartitionProduceResponse", (
    Field("Index", "int32", (0, None)),
    Field("ErrorCode", "int16", (0, None)),
    Field("BaseOffset", "int64", (0, None)),
    Field("LogAppendTimeMs", "int64", (2, None)),
    Field("LogStartOffset", "int64", (5, None)),
    Field("RecordErrors", Array(_PRODUCE_BATCH_INDEX_AND_ERROR_MESSAGE), (8, None)),
    Field("ErrorMessage", "string", (8, None), nullable=(8, None)),
    Field("CurrentLeader", _PRODUCE_LEADER_ID_AND_EPOCH, (10, None), tag=0, tagged=(10, None)),
))

_PRODUCE_TOPIC_PRODUCE_RESPONSE = Struct("TopicProduceResponse", (
    Field("Name", "string", (0, 12)),
    Field("TopicId", "uuid", (13, None)),
    Field("PartitionResponses", Array(_PRODUCE_PARTITION_PRODUCE_RESPONSE), (0, None)),
))

_PRODUCE_NODE_ENDPOINT = Struct("NodeEndpoint", (
    Field("NodeId", "int32", (10, None)),
    Field("Host", "string", (10, None)),
    Field("Port", "int32", (10, None)),
    Field("Rack", "string", (10, None), nullable=(10, None)),
))

_PRODUCE_RESPONSE = Struct("ProduceResponse", (
    Field("Responses", Array(_PRODUCE_TOPIC_PRODUCE_RESPONSE), (0, None)),
    Field("ThrottleTimeMs", "int32", (1, None)),
    Field("NodeEndpoints", Array(_PRODUCE_NODE_ENDPOINT), (10, None), tag=0, tagged=(10, None)),
))

PRODUCE_RESPONSE = Message(
    api_key=0, valid=(3, 13), flexible_from=9, body=_PRODUCE_RESPONSE,
)


# FetchResponse (API key 1)
_FETCH_EPOCH_END_OFFSET = Struct("EpochEndOffset", (
    Field("Epoch", "int32", (12, None)),
    Field("EndOffset", "int64", (12, None)),
))

_FETCH_LEADER_ID_AND_EPOCH = Struct("LeaderIdAndEpoch", (
    Field("LeaderId", "int32", (12, None)),
    Field("LeaderEpoch", "int32", (12, None)),
))

_FETCH_SNAPSHOT_ID = Struct("SnapshotId", (
    Field("EndOffset", "int64", (0, None)),
    Field("Epoch", "int32", (0, None)),
))

_FETCH_ABORTED_TRANSACTION = Struct("AbortedTransaction", (
    Field("ProducerId", "int64", (4, None)),
    Field("FirstOffset", "int64", (4, None)),
))

_FETCH_PARTITION_DATA = Struct("PartitionData", (
    Field("PartitionIndex", "int32", (0, None)),
    Field("ErrorCode", "int16", (0, None)),
    Field("HighWatermark", "int64", (0, None)),
    Field("LastStableOffset", "int64", (4, None)),
    Field("LogStartOffset", "int64", (5, None)),
    Field("DivergingEpoch", _FETCH_EPOCH_END_OFFSET, (12, None), tag=0, tagged=(12, None)),
    Field("CurrentLeader", _FETCH_LEADER_ID_AND_EPOCH, (12, None), tag=1, tagged=(12, None)),
    Field("SnapshotId", _FETCH_SNAPSHOT_ID, (12, None), tag=2, tagged=(12, None)),
    Field("AbortedTransactions", Array(_FETCH_ABORTED_TRANSACTION), (4, None), nullable=(4, None)),
    Field("PreferredReadReplica", "int32", (11, None)),
    Field("Records", "records", (0, None), nullable=(0, None)),
))

_FETCH_FETCHABLE_TOPIC_RESPONSE = Struct("FetchableTopicResponse", (
    Field("Topic", "string", (0, 12)),
    Field("TopicId", "uuid", (13, None)),
    Field("Partitions", Array(_FETCH_PARTITION_DATA), (0, None)),
))

_FETCH_NODE_ENDPOINT = Struct("NodeEndpoint", (
    Field("NodeId", "int32", (16, None)),
    Field("Host", "string", (16, None)),
    Field("Port", "int32", (16, None)),
    Field("Rack", "string", (16, None), nullable=(16, None)),
))

_FETCH_RESPONSE = Struct("FetchResponse", (
    Field("ThrottleTimeMs", "int32", (1, None)),
    Field("ErrorCode", "int16", (7, None)),
    Field("SessionId", "int32", (7, None)),
    Field("Responses", Array(_FETCH_FETCHABLE_TOPIC_RESPONSE), (0, None)),
    Field("NodeEndpoints", Array(_FETCH_NODE_ENDPOINT), (16, None), tag=0, tagged=(16, None)),
))

FETCH_RESPONSE = Message(
    api_key=1, valid=(4, 18), flexible_from=12, body=_FETCH_RESPONSE,
)


# ShareFetchResponse (API key 78)
_SHARE_FETCH_LEADER_ID_AND_EPOCH = Struct("LeaderIdAndEpoch", (
    Field("LeaderId", "int32", (0, None)),
    Field("LeaderEpoch", "int32", (0, None)),
))

_SHARE_FETCH_ACQUIRED_RECORDS = Struct("AcquiredRecords", (
    Field("FirstOffset", "int64", (0, None)),
    Field("LastOffset", "int64", (0, None)),
    Field("DeliveryCount", "int16", (0, None)),
))

_SHARE_FETCH_PARTITION_DATA = Struct("PartitionData", (
    Field("PartitionIndex", "int32", (0, None)),
    Field("ErrorCode", "int16", (0, None)),
    Field("ErrorMessage", "string", (0, None), nullable=(0, None)),
    Field("AcknowledgeErrorCode", "int16", (0, None)),
    Field("AcknowledgeErrorMessage", "string", (0, None), nullable=(0, None)),
    Field("CurrentLeader", _SHARE_FETCH_LEADER_ID_AND_EPOCH, (0, None)),
    Field("Records", "records", (0, None), nullable=(0, 0)),
    Field("AcquiredRecords", Array(_SHARE_FETCH_ACQUIRED_RECORDS), (0, None)),
))

_SHARE_FETCH_SHARE_FETCHABLE_TOPIC_RESPONSE = Struct("ShareFetchableTopicResponse", (
    Field("TopicId", "uuid", (0, None)),
    Field("Partitions", Array(_SHARE_FETCH_PARTITION_DATA), (0, None)),
))

_SHARE_FETCH_NODE_ENDPOINT = Struct("NodeEndpoint", (
    Field("NodeId", "int32", (0, None)),
    Field("Host", "string", (0, None)),
    Field("Port", "int32", (0, None)),
    Field("Rack", "string", (0, None), nullable=(0, None)),
))

_SHARE_FETCH_RESPONSE = Struct("ShareFetchResponse", (
    Field("ThrottleTimeMs", "int32", (0, None)),
    Field("ErrorCode", "int16", (0, None)),
    Field("ErrorMessage", "string", (0, None), nullable=(0, None)),
    Field("AcquisitionLockTimeoutMs", "int32", (1, None)),
    Field("Responses", Array(_SHARE_FETCH_SHARE_FETCHABLE_TOPIC_RESPONSE), (0, None)),
    Field("NodeEndpoints", Array(_SHARE_FETCH_NODE_ENDPOINT), (0, None)),
))

SHARE_FETCH_RESPONSE = Message(
    api_key=78, valid=(1, 2), flexible_from=0, body=_SHARE_FETCH_RESPONSE,
)


# ShareAcknowledgeResponse (API key 79)
_SHARE_ACKNOWLEDGE_LEADER_ID_AND_EPOCH = Struct("LeaderIdAndEpoch", (
    Field("LeaderId", "int32", (0, None)),
    Field("LeaderEpoch", "int32", (0, None)),
))

_SHARE_ACKNOWLEDGE_PARTITION_DATA = Struct("PartitionData", (
    Field("PartitionIndex", "int32", (0, None)),
    Field("ErrorCode", "int16", (0, None)),
    Field("ErrorMessage", "string", (0, None), nullable=(0, None)),
    Field("CurrentLeader", _SHARE_ACKNOWLEDGE_LEADER_ID_AND_EPOCH, (0, None)),
))

_SHARE_ACKNOWLEDGE_TOPIC_RESPONSE = Struct("ShareAcknowledgeTopicResponse", (
    Field("TopicId", "uuid", (0, None)),
    Field("Partitions", Array(_SHARE_ACKNOWLEDGE_PARTITION_DATA), (0, None)),
))

_SHARE_ACKNOWLEDGE_NODE_ENDPOINT = Struct("NodeEndpoint", (
    Field("NodeId", "int32", (0, None)),
    Field("Host", "string", (0, None)),
    Field("Port", "int32", (0, None)),
    Field("Rack", "string", (0, None), nullable=(0, None)),
))

_SHARE_ACKNOWLEDGE_RESPONSE = Struct("ShareAcknowledgeResponse", (
    Field("ThrottleTimeMs", "int32", (0, None)),
    Field("ErrorCode", "int16", (0, None)),
    Field("ErrorMessage", "string", (0, None), nullable=(0, None)),
    Field("AcquisitionLockTimeoutMs", "int32", (2, None)),
    Field("Responses", Array(_SHARE_ACKNOWLEDGE_TOPIC_RESPONSE), (0, None)),
    Field("NodeEndpoints", Array(_SHARE_ACKNOWLEDGE_NODE_ENDPOINT), (0, None)),
))

SHARE_ACKNOWLEDGE_RESPONSE = Message(
    api_key=79, valid=(1, 2), flexible_from=0, body=_SHARE_ACKNOWLEDGE_RESPONSE,
)


# DescribeQuorumResponse (API key 55)
_DESCRIBE_QUORUM_REPLICA_STATE = Struct("ReplicaState", (
    Field("ReplicaId", "int32", (0, None)),
    Field("ReplicaDirectoryId", "uuid", (2, None)),
    Field("LogEndOffset", "int64", (0, None)),
    Field("LastFetchTimestamp", "int64", (1, None)),
    Field("LastCaughtUpTimestamp", "int64", (1, None)),
))

_DESCRIBE_QUORUM_PARTITION_DATA = Struct("PartitionData", (
    Field("PartitionIndex", "int32", (0, None)),
    Field("ErrorCode", "int16", (0, None)),
    Field("ErrorMessage", "string", (2, None), nullable=(2, None)),
    Field("LeaderId", "int32", (0, None)),
    Field("LeaderEpoch", "int32", (0, None)),
    Field("HighWatermark", "int64", (0, None)),
    Field("CurrentVoters", Array(_DESCRIBE_QUORUM_REPLICA_STATE), (0, None)),
    Field("Observers", Array(_DESCRIBE_QUORUM_REPLICA_STATE), (0, None)),
))

_DESCRIBE_QUORUM_TOPIC_DATA = Struct("TopicData", (
    Field("TopicName", "string", (0, None)),
    Field("Partitions", Array(_DESCRIBE_QUORUM_PARTITION_DATA), (0, None)),
))

_DESCRIBE_QUORUM_LISTENER = Struct("Listener", (
    Field("Name", "string", (2, None)),
    Field("Host", "string", (2, None)),
    Field("Port", "uint16", (2, None)),
))

_DESCRIBE_QUORUM_NODE = Struct("Node", (
    Field("NodeId", "int32", (2, None)),
    Field("Listeners", Array(_DESCRIBE_QUORUM_LISTENER), (2, None)),
))

_DESCRIBE_QUORUM_RESPONSE = Struct("DescribeQuorumResponse", (
    Field("ErrorCode", "int16", (0, None)),
    Field("ErrorMessage", "string", (2, None), nullable=(2, None)),
    Field("Topics", Array(_DESCRIBE_QUORUM_TOPIC_DATA), (0, None)),
    Field("Nodes", Array(_DESCRIBE_QUORUM_NODE), (2, None)),
))

DESCRIBE_QUORUM_RESPONSE = Message(
    api_key=55, valid=(0, 2), flexible_from=0, body=_DESCRIBE_QUORUM_RESPONSE,
)


RESPONSES: dict[int, Message] = {
    0: PRODUCE_RESPONSE,
    1: FETCH_RESPONSE,
    3: METADATA_RESPONSE,
    10: FIND_COORDINATOR_RESPONSE,
    18: API_VERSIONS_RESPONSE,
    55: DESCRIBE_QUORUM_RESPONSE,
    60: DESCRIBE_CLUSTER_RESPONSE,
    78: SHARE_FETCH_RESPONSE,
    79: SHARE_ACKNOWLEDGE_RESPONSE,
}
