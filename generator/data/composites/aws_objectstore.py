BUCKET_LABEL = "platform.gitops.io/bucket"


class Composite(BaseComposite):
    """S3 buckets and the IAM role that writes them (provider-upjet-aws v2.6.0, s3 and iam groups). Per bucket: the
    Bucket (external name = the bucket's name), ownership enforced (ACLs off), every public access blocked, default
    encryption, versioning, a lifecycle (noncurrent versions, incomplete uploads, optional expiry) and a policy that
    denies plain HTTP. Then one role that only the listed service accounts of the hub may assume, through the hub's
    OIDC issuer (IRSA: sts:AssumeRoleWithWebIdentity, exact `sub` and `aud`), with an inline policy limited to these
    buckets. The role's external name is its IAM name, so its ARN is known before it exists."""

    def compose(self):
        region = str(self.spec.region)
        account = str(self.spec.account)
        s3 = "s3.aws.m.upbound.io/v1beta1"
        iam = "iam.aws.m.upbound.io/v1beta1"
        noncurrent = int(self.spec.noncurrentVersionDays) if self.spec.noncurrentVersionDays else 7
        abort = int(self.spec.abortIncompleteUploadDays) if self.spec.abortIncompleteUploadDays else 1
        arns = []
        for bucket in self.spec.buckets:
            name = str(bucket.name)
            arns.append(f"arn:aws:s3:::{name}")
            of_bucket = selector((BUCKET_LABEL, name), controller=True)
            created = compose(self, f"bucket-{name}", s3, "Bucket", labels={BUCKET_LABEL: name},
                              for_provider={"region": region, "tags": tags(self, bucket=name), "forceDestroy": False})
            created.externalName = name
            compose(self, f"ownership-{name}", s3, "BucketOwnershipControls", for_provider={
                "region": region, "bucketSelector": of_bucket, "rule": {"objectOwnership": "BucketOwnerEnforced"}})
            compose(self, f"public-access-block-{name}", s3, "BucketPublicAccessBlock", for_provider={
                "region": region, "bucketSelector": of_bucket, "blockPublicAcls": True, "blockPublicPolicy": True,
                "ignorePublicAcls": True, "restrictPublicBuckets": True})
            compose(self, f"encryption-{name}", s3, "BucketServerSideEncryptionConfiguration", for_provider={
                "region": region, "bucketSelector": of_bucket,
                "rule": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]})
            compose(self, f"versioning-{name}", s3, "BucketVersioning", for_provider={
                "region": region, "bucketSelector": of_bucket, "versioningConfiguration": {"status": "Enabled"}})
            rules = [{"id": "housekeeping", "status": "Enabled", "filter": [{"prefix": ""}],
                      "abortIncompleteMultipartUpload": [{"daysAfterInitiation": abort}],
                      "noncurrentVersionExpiration": [{"noncurrentDays": noncurrent}],
                      "expiration": [{"expiredObjectDeleteMarker": True}]}]
            if bucket.expirationDays:
                rules.append({"id": "retention", "status": "Enabled", "filter": [{"prefix": ""}],
                              "expiration": [{"days": int(bucket.expirationDays)}]})
            compose(self, f"lifecycle-{name}", s3, "BucketLifecycleConfiguration", for_provider={
                "region": region, "bucketSelector": of_bucket, "rule": rules})
            tls_only = {"Version": "2012-10-17", "Statement": [{
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
            compose(self, f"policy-{name}", s3, "BucketPolicy", for_provider={
                "region": region, "bucketSelector": of_bucket, "policy": json.dumps(tls_only, indent=2) + "\n"})
        self.compose_writer(iam, account, arns)

    def compose_writer(self, iam, account, arns):
        """The role the writers assume with their service-account token, and its policy on these buckets only."""
        writers = self.spec.writers
        issuer = str(writers.oidcIssuer).removeprefix("https://")
        subjects = [f"system:serviceaccount:{sa.namespace}:{sa.name}" for sa in writers.serviceAccounts]
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
            "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{issuer}"},
            "Condition": {"StringEquals": {f"{issuer}:aud": "sts.amazonaws.com", f"{issuer}:sub": subjects}}}]}
        role = compose(self, "writer-role", iam, "Role", labels={ROLE_LABEL: "writer"}, for_provider={
            "assumeRolePolicy": json.dumps(trust, indent=2) + "\n", "tags": tags(self),
            "description": "Writes the buckets of ObjectStore " + xr_name(self)})
        role.externalName = str(writers.identityName)
        access = {"Version": "2012-10-17", "Statement": [
            {"Sid": "Buckets", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
             "Resource": arns},
            {"Sid": "Objects", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:GetObjectTagging",
                        "s3:PutObjectTagging"],
             "Resource": [f"{arn}/*" for arn in arns]}]}
        compose(self, "writer-policy", iam, "RolePolicy", for_provider={
            "policy": json.dumps(access, indent=2) + "\n",
            "roleSelector": selector((ROLE_LABEL, "writer"), controller=True)})
        self.status.identity = role.status.atProvider.arn
