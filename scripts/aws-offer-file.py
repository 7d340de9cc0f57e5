"""A synthetic EC2 regional offer file in the AWS Price List's shape, for
measuring `skyward catalog fetch --provider aws` on a file of the real one's
size without the internet: products with the ~40 attributes AWS writes,
one OnDemand and two Reserved terms each.

    python3 scripts/aws-offer-file.py DIR 130000   # ~390 MB
    (cd DIR && python3 -m http.server 18080 --bind 127.0.0.1) &
    skyward catalog fetch --provider aws --regions us-east-1 \
        --endpoint http://127.0.0.1:18080 --out /tmp/aws.csv

It writes DIR/offers/v1.0/aws/AmazonEC2/current/region_index.json and the
us-east-1 offer file it points to."""
import json, os, sys, random
root, n = sys.argv[1], int(sys.argv[2])
path = "/offers/v1.0/aws/AmazonEC2/20261130000000/us-east-1/index.json"
os.makedirs(root + os.path.dirname(path), exist_ok=True)
os.makedirs(root + "/offers/v1.0/aws/AmazonEC2/current", exist_ok=True)
with open(root + "/offers/v1.0/aws/AmazonEC2/current/region_index.json", "w") as f:
    json.dump({"disclaimer": "synthetic", "publicationDate": "2026-11-30T00:00:00Z",
               "regions": {"us-east-1": {"regionCode": "us-east-1", "currentVersionUrl": path}}}, f)
out = root + path
random.seed(7)
types = ["p5.48xlarge", "p4d.24xlarge", "g5.xlarge", "g6.2xlarge", "trn1.32xlarge", "inf2.xlarge"] + [f"m5.{s}" for s in ["large","xlarge","2xlarge","4xlarge"]] + [f"c6i.{s}" for s in ["large","xlarge","2xlarge"]]
oses = ["Linux", "Windows", "RHEL", "SUSE", "Red Hat Enterprise Linux with HA", "Ubuntu Pro"]
with open(out, "w") as f:
    f.write('{"formatVersion":"v1.0","disclaimer":"synthetic","offerCode":"AmazonEC2","version":"20261130000000","publicationDate":"2026-11-30T00:00:00Z","products":{')
    skus = []
    for i in range(n):
        sku = "%016X" % random.getrandbits(64)
        skus.append(sku)
        t = types[i % len(types)]
        attrs = {"servicecode":"AmazonEC2","location":"US East (N. Virginia)","locationType":"AWS Region","instanceType":t,"currentGeneration":"Yes","instanceFamily":"GPU instance","vcpu":"192","physicalProcessor":"AMD EPYC 7R13 Processor","clockSpeed":"2.95 GHz","memory":"2048 GiB","storage":"8 x 3840 NVMe SSD","networkPerformance":"3200 Gigabit","processorArchitecture":"64-bit","tenancy":["Shared","Dedicated","Host"][i % 3],"operatingSystem":oses[(i // 3) % len(oses)],"licenseModel":"No License required","usagetype":"BoxUsage:"+t,"operation":"RunInstances:%04d" % (i % 100),"availabilityzone":"NA","capacitystatus":["Used","UnusedCapacityReservation","AllocatedCapacityReservation"][(i // 18) % 3],"classicnetworkingsupport":"false","dedicatedEbsThroughput":"80000 Mbps","ecu":"NA","enhancedNetworkingSupported":"Yes","gpu":"8","gpuMemory":"640 GB","intelAvxAvailable":"No","intelAvx2Available":"No","intelTurboAvailable":"No","marketoption":"OnDemand","normalizationSizeFactor":"384","preInstalledSw":["NA","SQL Web","SQL Std"][(i // 54) % 3],"processorFeatures":"AMD Turbo","regionCode":"us-east-1","servicename":"Amazon Elastic Compute Cloud","vpcnetworkingsupport":"true"}
        f.write(("," if i else "") + json.dumps(sku) + ":" + json.dumps({"sku": sku, "productFamily": "Compute Instance", "attributes": attrs}))
    f.write('},"terms":{"OnDemand":{')
    for i, sku in enumerate(skus):
        code = sku + ".JRTCKXETXF"
        price = "%.10f" % (1 + (i % 97))
        term = {code: {"offerTermCode": "JRTCKXETXF", "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "priceDimensions": {code + ".6YS6EN2CT7": {"rateCode": code + ".6YS6EN2CT7", "description": "$%s per On Demand Linux Instance Hour" % price, "beginRange": "0", "endRange": "Inf", "unit": "Hrs", "pricePerUnit": {"USD": price}, "appliesTo": []}}, "termAttributes": {}}}
        f.write(("," if i else "") + json.dumps(sku) + ":" + json.dumps(term))
    f.write('},"Reserved":{')
    for i, sku in enumerate(skus):
        terms = {}
        for k, (lease, opt) in enumerate([("1yr","No Upfront"),("3yr","All Upfront")]):
            code = sku + ".R%d" % k
            terms[code] = {"offerTermCode": "R%d" % k, "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "priceDimensions": {code + ".2TG2D8R56U": {"rateCode": code + ".2TG2D8R56U", "description": "Upfront Fee", "unit": "Quantity", "pricePerUnit": {"USD": "1000"}, "appliesTo": []}, code + ".6YS6EN2CT7": {"rateCode": code + ".6YS6EN2CT7", "description": "Linux/UNIX reserved", "beginRange": "0", "endRange": "Inf", "unit": "Hrs", "pricePerUnit": {"USD": "0.5"}, "appliesTo": []}}, "termAttributes": {"LeaseContractLength": lease, "OfferingClass": "standard", "PurchaseOption": opt}}
        f.write(("," if i else "") + json.dumps(sku) + ":" + json.dumps(terms))
    f.write('}}}')
