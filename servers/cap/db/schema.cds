// A subset of SAP S/4HANA's public OData APIs, with their real entity and field names:
// API_BUSINESS_PARTNER, API_PRODUCT_SRV, API_SALES_ORDER_SRV,
// API_SLSPRICINGCONDITIONRECORD_SRV and API_CREDIT_MEMO_REQUEST_SRV. LastChangeDateTime is set by the server on every insert and
// update and carries the ETag, as in S/4HANA (whose A_BusinessPartner has LastChangeDate and
// LastChangeTime instead; see docs/parts/sap.md).
namespace s4;

aspect Changed {
  LastChangeDateTime : Timestamp @cds.on.insert: $now @cds.on.update: $now @odata.etag;
}

entity BusinessPartners : Changed {
  key BusinessPartner          : String(10);
      Customer                 : String(10) default ''; // KUNNR; empty (as in S/4HANA): no customer role
      BusinessPartnerFullName  : String(81);
      BusinessPartnerCategory  : String(1); // 1 person, 2 organization
      FirstName                : String(40);
      LastName                 : String(40);
      OrganizationBPName1      : String(40);
      CreationDate             : Date @cds.on.insert: $now;
      BusinessPartnerIsBlocked : Boolean default false;
      to_BusinessPartnerAddress : Composition of many BusinessPartnerAddresses
                                    on to_BusinessPartnerAddress.BusinessPartner = BusinessPartner;
}

entity BusinessPartnerAddresses {
  key BusinessPartner : String(10);
  key AddressID       : String(10);
      CityName        : String(40);
      PostalCode      : String(10);
      StreetName      : String(60);
      HouseNumber     : String(10);
      Country         : String(3);
}

entity Products : Changed {
  key Product        : String(40);
      ProductType    : String(4);
      BaseUnit       : String(3);
      GrossWeight    : Decimal(13, 3);
      WeightUnit     : String(3);
      to_Description : Composition of many ProductDescriptions on to_Description.Product = Product;
}

entity ProductDescriptions {
  key Product            : String(40);
  key Language           : String(2);
      ProductDescription : String(40);
}

entity SalesOrders : Changed {
  key SalesOrder              : String(10);
      SalesOrderType          : String(4);
      SoldToParty             : String(10);
      SalesOrganization       : String(4);
      DistributionChannel     : String(2);
      OrganizationDivision    : String(2);
      PurchaseOrderByCustomer : String(35);
      TotalNetAmount          : Decimal(16, 3);
      TransactionCurrency     : String(5);
      OverallSDProcessStatus  : String(1);
      CreationDate            : Date @cds.on.insert: $now;
      to_Item                 : Composition of many SalesOrderItems on to_Item.SalesOrder = SalesOrder;
}

entity SalesOrderItems {
  key SalesOrder            : String(10);
  key SalesOrderItem        : String(6);
      Material              : String(40);
      RequestedQuantity     : Decimal(15, 3);
      RequestedQuantityUnit : String(3);
      NetAmount             : Decimal(16, 3);
      TransactionCurrency   : String(5);
}

// Sales prices are condition records (transaction VK11): the amount on the record, the key fields
// (sales area, customer, material) on its validity, as API_SLSPRICINGCONDITIONRECORD_SRV has them.
// S/4HANA stamps no change time on either, so they are read in full.
entity PricingConditionRecords {
  key ConditionRecord            : String(10);
      ConditionType              : String(4);
      ConditionValidityStartDate : Date;
      ConditionValidityEndDate   : Date;
      ConditionRateValue         : Decimal(12, 3);
      ConditionRateValueUnit     : String(5);
      ConditionQuantity          : Decimal(5, 0);
      ConditionQuantityUnit      : String(3);
      ConditionIsDeleted         : Boolean default false;
      to_SlsPrcgCndnRecdValidity : Composition of many PricingConditionValidities
                                     on to_SlsPrcgCndnRecdValidity.ConditionRecord = ConditionRecord;
}

entity PricingConditionValidities {
  key ConditionRecord            : String(10);
  key ConditionValidityEndDate   : Date;
      ConditionValidityStartDate : Date;
      ConditionType              : String(4);
      SalesOrganization          : String(4);
      DistributionChannel        : String(2);
      Customer                   : String(10);
      Material                   : String(40);
      to_SlsPrcgConditionRecord  : Association to PricingConditionRecords
                                     on to_SlsPrcgConditionRecord.ConditionRecord = ConditionRecord;
}

// Credit memo requests (sales document type G2/CBAR), as API_CREDIT_MEMO_REQUEST_SRV has them:
// the warranty example (examples/warranty) asks for one for every approved claim.
entity CreditMemoRequests : Changed {
  key CreditMemoRequest       : String(10);
      CreditMemoRequestType   : String(4);
      SalesOrganization       : String(4);
      DistributionChannel     : String(2);
      OrganizationDivision    : String(2);
      SoldToParty             : String(10);
      PurchaseOrderByCustomer : String(35);
      CustomerPurchaseOrderDate : Date;
      SDDocumentReason        : String(3);
      TotalNetAmount          : Decimal(16, 3);
      TransactionCurrency     : String(5);
      CreditMemoRequestDate   : Date @cds.on.insert: $now;
      OverallSDProcessStatus  : String(1) default 'A';
      to_Item                 : Composition of many CreditMemoRequestItems
                                  on to_Item.CreditMemoRequest = CreditMemoRequest;
}

entity CreditMemoRequestItems {
  key CreditMemoRequest         : String(10);
  key CreditMemoRequestItem     : String(6);
      Material                  : String(40);
      CreditMemoRequestItemText : String(40);
      RequestedQuantity         : Decimal(15, 3);
      RequestedQuantityUnit     : String(3);
      NetAmount                 : Decimal(16, 3);
      TransactionCurrency       : String(5);
}
