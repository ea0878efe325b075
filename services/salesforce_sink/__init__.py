"""The Salesforce sink: dispatch.salesforce envelopes -> bill and line records (upserts by
external id through sObject Collections and Composite)."""
