"""Every table of the system, one module per domain. Import from here."""

from shared.models.appointment import (
    APPOINTMENT_STATUSES,
    LIVE_STATUSES,
    Appointment,
    AppointmentLock,
    AvailabilityCache,
    IdempotencyKey,
)
from shared.models.auth import ApiKey
from shared.models.base import Base, TenantMixin
from shared.models.callback import CallbackEscalation, CallbackRequest
from shared.models.company import (
    Branch,
    Company,
    Service,
    Staff,
    StaffService,
    TimeOff,
    WorkingHours,
)
from shared.models.customer import Call, Customer, PhoneNumber, RetellAgent
from shared.models.integration import ApiCallLog, OutboxEvent, WebhookEvent
from shared.models.notification import (
    NotificationConfiguration,
    NotificationConfigurationChange,
    NotificationDelivery,
    NotificationEventMapping,
    NotificationReminder,
    NotificationTemplate,
)
from shared.models.opening_hours import BranchClosedDay, BranchOpeningHours
from shared.models.ops import BookingFailure
from shared.models.policy import (
    AppointmentModification,
    AppointmentModificationStat,
    PolicyConfiguration,
    PolicyConfigurationChange,
)

__all__ = [
    "APPOINTMENT_STATUSES",
    "LIVE_STATUSES",
    "ApiCallLog",
    "ApiKey",
    "Appointment",
    "AppointmentLock",
    "AppointmentModification",
    "AppointmentModificationStat",
    "AvailabilityCache",
    "Base",
    "BookingFailure",
    "Branch",
    "BranchClosedDay",
    "BranchOpeningHours",
    "Call",
    "CallbackEscalation",
    "CallbackRequest",
    "Company",
    "Customer",
    "IdempotencyKey",
    "NotificationConfiguration",
    "NotificationConfigurationChange",
    "NotificationDelivery",
    "NotificationEventMapping",
    "NotificationReminder",
    "NotificationTemplate",
    "OutboxEvent",
    "PhoneNumber",
    "PolicyConfiguration",
    "PolicyConfigurationChange",
    "RetellAgent",
    "Service",
    "Staff",
    "StaffService",
    "TenantMixin",
    "TimeOff",
    "WebhookEvent",
    "WorkingHours",
]
