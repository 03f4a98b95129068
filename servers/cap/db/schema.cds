// A subset of SAP S/4HANA's public OData APIs, with their real entity and field names:
// API_BUSINESS_PARTNER, API_PRODUCT_SRV and API_SALES_ORDER_SRV. LastChangeDateTime is set by
// the server on every insert and update and carries the ETag, as in S/4HANA.
namespace s4;

aspect Changed {
  LastChangeDateTime : Timestamp @cds.on.insert: $now @cds.on.update: $now @odata.etag;
}

entity BusinessPartners : Changed {
  key BusinessPartner          : String(10);
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
