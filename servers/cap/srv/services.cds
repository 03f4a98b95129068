// The five S/4HANA APIs, served as OData V4 at /odata/v4/<name> and, through the OData V2
// adapter, as V2 at /odata/v2/<name>. Every request needs a user (mocked basic auth).
using { s4 } from '../db/schema';

@path: 'API_BUSINESS_PARTNER'
@requires: 'authenticated-user'
service API_BUSINESS_PARTNER {
  entity A_BusinessPartner as projection on s4.BusinessPartners {
    *, to_BusinessPartnerAddress : redirected to A_BusinessPartnerAddress
  };
  entity A_BusinessPartnerAddress as projection on s4.BusinessPartnerAddresses;
}

@path: 'API_PRODUCT_SRV'
@requires: 'authenticated-user'
service API_PRODUCT_SRV {
  entity A_Product as projection on s4.Products {
    *, to_Description : redirected to A_ProductDescription
  };
  entity A_ProductDescription as projection on s4.ProductDescriptions;
}

@path: 'API_SALES_ORDER_SRV'
@requires: 'authenticated-user'
service API_SALES_ORDER_SRV {
  entity A_SalesOrder as projection on s4.SalesOrders {
    *, to_Item : redirected to A_SalesOrderItem
  };
  entity A_SalesOrderItem as projection on s4.SalesOrderItems;
}

@path: 'API_SLSPRICINGCONDITIONRECORD_SRV'
@requires: 'authenticated-user'
service API_SLSPRICINGCONDITIONRECORD_SRV {
  entity A_SlsPrcgConditionRecord as projection on s4.PricingConditionRecords {
    *, to_SlsPrcgCndnRecdValidity : redirected to A_SlsPrcgCndnRecdValidity
  };
  entity A_SlsPrcgCndnRecdValidity as projection on s4.PricingConditionValidities {
    *, to_SlsPrcgConditionRecord : redirected to A_SlsPrcgConditionRecord
  };
}

@path: 'API_CREDIT_MEMO_REQUEST_SRV'
@requires: 'authenticated-user'
service API_CREDIT_MEMO_REQUEST_SRV {
  entity A_CreditMemoRequest as projection on s4.CreditMemoRequests {
    *, to_Item : redirected to A_CreditMemoRequestItem
  };
  entity A_CreditMemoRequestItem as projection on s4.CreditMemoRequestItems;
}
