//! Kafka error codes for the broker's errors. Each mapping keeps the client's behaviour
//! right: retriable conditions (not the leader, no leader yet, an unknown outcome) map to
//! Kafka's retriable codes, refusals to non-retriable ones, so a client neither gives up on
//! a leader change nor retries a batch that can never be taken.

use kafka_protocol::ResponseError as E;
use strata_broker::BrokerError;
use strata_broker::types::Refusal;
use strata_groups::GroupError;
use strata_groups::classic::ClassicError;

/// No error.
pub const NONE: i16 = 0;

/// The code for a broker error on a data or admin call.
pub fn broker(e: &BrokerError) -> i16 {
    match e {
        BrokerError::UnknownTopic { .. } | BrokerError::UnknownPartition { .. } => {
            E::UnknownTopicOrPartition.code()
        }
        BrokerError::NotLeader {
            leader: Some(_), ..
        } => E::NotLeaderOrFollower.code(),
        BrokerError::NotLeader { leader: None, .. } => E::LeaderNotAvailable.code(),
        BrokerError::Indeterminate { .. } => E::RequestTimedOut.code(),
        BrokerError::InvalidArgument { field, .. } => match field.as_str() {
            "name" | "topic" => E::InvalidTopicException.code(),
            "partitions" => E::InvalidPartitions.code(),
            "replication_factor" => E::InvalidReplicationFactor.code(),
            f if f.starts_with("configs") || f.starts_with("remove") => E::InvalidConfig.code(),
            _ => E::InvalidRequest.code(),
        },
        BrokerError::MessageTooLarge { .. } => E::MessageTooLarge.code(),
        BrokerError::LimitExceeded { limit, .. } if limit.starts_with("partitions") => {
            E::InvalidPartitions.code()
        }
        BrokerError::LimitExceeded { .. } => E::PolicyViolation.code(),
        BrokerError::InvalidBatch { .. } => E::InvalidRecord.code(),
        BrokerError::OutOfOrderSequence { .. } => E::OutOfOrderSequenceNumber.code(),
        BrokerError::ProducerFenced { .. } => E::InvalidProducerEpoch.code(),
        BrokerError::OffsetOutOfRange { .. } => E::OffsetOutOfRange.code(),
        BrokerError::ReplicaDown { .. } | BrokerError::DiskFull { .. } => {
            E::KafkaStorageError.code()
        }
        BrokerError::NotController { .. } => E::NotController.code(),
        BrokerError::Refused(r) => refusal(r),
        BrokerError::Group(g) => group(g),
        BrokerError::Queue(_) => E::InvalidRequest.code(),
        BrokerError::Internal(_) => E::UnknownServerError.code(),
    }
}

fn refusal(r: &Refusal) -> i16 {
    match r {
        Refusal::TopicExists(_) => E::TopicAlreadyExists.code(),
        Refusal::UnknownTopic(_) => E::UnknownTopicOrPartition.code(),
        Refusal::NotEnoughNodes { .. } => E::InvalidReplicationFactor.code(),
        Refusal::Invalid(m) if m.contains("partition") => E::InvalidPartitions.code(),
        _ => E::InvalidRequest.code(),
    }
}

/// The code for a group refusal.
pub fn group(g: &GroupError) -> i16 {
    match g {
        GroupError::InvalidName(_) => E::InvalidGroupId.code(),
        GroupError::UnknownGroup(_) => E::GroupIdNotFound.code(),
        GroupError::UnknownMember(_) => E::UnknownMemberId.code(),
        GroupError::FencedMemberEpoch { .. } => E::IllegalGeneration.code(),
        GroupError::NotOwned { .. } => E::UnknownMemberId.code(),
        GroupError::OffsetBehind { .. } | GroupError::InvalidOffset { .. } => {
            E::OffsetOutOfRange.code()
        }
        GroupError::GroupNotEmpty { .. } => E::NonEmptyGroup.code(),
        GroupError::StaleGroupEpoch { .. } => E::CoordinatorNotAvailable.code(),
        GroupError::InvalidRequest(_) => E::InvalidRequest.code(),
        GroupError::Invariant(_) => E::UnknownServerError.code(),
    }
}

/// The code for a broker error on a coordinator call: a coordinator that moved is
/// NOT_COORDINATOR (the client looks it up again), one that cannot serve yet is
/// COORDINATOR_NOT_AVAILABLE.
pub fn coordinator(e: &BrokerError) -> i16 {
    match e {
        BrokerError::NotLeader { .. } => E::NotCoordinator.code(),
        BrokerError::Indeterminate { .. }
        | BrokerError::NotController { .. }
        | BrokerError::ReplicaDown { .. }
        | BrokerError::Internal(_) => E::CoordinatorNotAvailable.code(),
        other => broker(other),
    }
}

/// The code for a classic protocol refusal.
pub fn classic(e: &ClassicError) -> i16 {
    match e {
        ClassicError::UnknownMember(_) => E::UnknownMemberId.code(),
        ClassicError::IllegalGeneration { .. } => E::IllegalGeneration.code(),
        ClassicError::RebalanceInProgress => E::RebalanceInProgress.code(),
        ClassicError::MemberIdRequired(_) => E::MemberIdRequired.code(),
        ClassicError::InconsistentProtocol(_) => E::InconsistentGroupProtocol.code(),
        ClassicError::InvalidSessionTimeout(_) => E::InvalidSessionTimeout.code(),
        ClassicError::GroupFull => E::GroupMaxSizeReached.code(),
        ClassicError::Coordinator(strata_groups::CoordinatorError::Group(g)) => group(g),
        ClassicError::Coordinator(strata_groups::CoordinatorError::Partition(_)) => {
            E::NotCoordinator.code()
        }
    }
}

/// The code for a failed classic group call.
pub fn classic_failure(e: &strata_broker::ClassicFailure) -> i16 {
    match e {
        strata_broker::ClassicFailure::Broker(b) => coordinator(b),
        strata_broker::ClassicFailure::Classic(c) => classic(c),
    }
}
