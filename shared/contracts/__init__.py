"""Event contracts shared by every billsync service (camelCase on the wire)."""

from shared.contracts.account import Account, Address
from shared.contracts.base import WireModel
from shared.contracts.bill import Bill, BillStatus, LineItem, LineItemType, PricingBandUsage
from shared.contracts.config import (
    Destination,
    EntityConfig,
    IntegrationConfig,
    IntegrationConfigAdapter,
    PaddleIntegrationConfig,
    SalesforceIntegrationConfig,
    SortLineItemsBy,
    StripeDestinationConfig,
    StripeIntegrationConfig,
    XeroIntegrationConfig,
    parse_config,
)
from shared.contracts.dispatch import DispatchEnvelope, ReplayRequest, Trigger, dispatch_id
from shared.contracts.mapping import ExternalMapping, ExternalSystem
from shared.contracts.runs import (
    DeadLetter,
    EventType,
    ExternalInvoiceStatus,
    ExternalStatusUpdate,
    IntegrationEvent,
    IntegrationRun,
    ResultRecord,
    ResultRecordAdapter,
    RunStatus,
)

__all__ = [
    "Account",
    "Address",
    "Bill",
    "BillStatus",
    "DeadLetter",
    "Destination",
    "DispatchEnvelope",
    "EntityConfig",
    "EventType",
    "ExternalInvoiceStatus",
    "ExternalMapping",
    "ExternalStatusUpdate",
    "ExternalSystem",
    "IntegrationConfig",
    "IntegrationConfigAdapter",
    "IntegrationEvent",
    "IntegrationRun",
    "LineItem",
    "LineItemType",
    "PaddleIntegrationConfig",
    "PricingBandUsage",
    "ReplayRequest",
    "ResultRecord",
    "ResultRecordAdapter",
    "RunStatus",
    "SalesforceIntegrationConfig",
    "SortLineItemsBy",
    "StripeDestinationConfig",
    "StripeIntegrationConfig",
    "Trigger",
    "WireModel",
    "XeroIntegrationConfig",
    "dispatch_id",
    "parse_config",
]
